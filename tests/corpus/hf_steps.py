"""The step-based loop of Hugging Face's run_*_no_trainer.py examples: dict batches
from a collate function, gradient accumulation with a completed_steps counter, a
linear warmup / linear decay schedule (get_linear_schedule_with_warmup as a LambdaLR),
AdamW with no weight decay on biases and norms, and an evaluation pass per epoch."""

import math

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
num_train_epochs = flor.arg("num_train_epochs", 4)
learning_rate = flor.arg("learning_rate", 5e-3)
gradient_accumulation_steps = flor.arg("gradient_accumulation_steps", 2)
per_device_train_batch_size = 16
num_warmup_steps = 2
weight_decay = 0.01
torch.manual_seed(seed)

# a toy "sentiment" task: label 1 when token 3 appears more often than token 5
vocab, seq_len = 20, 12
input_ids = torch.randint(0, vocab, (200, seq_len))
labels = ((input_ids == 3).sum(1) > (input_ids == 5).sum(1)).long()
train_examples = [{"input_ids": input_ids[i], "labels": labels[i]} for i in range(160)]
eval_examples = [{"input_ids": input_ids[i], "labels": labels[i]} for i in range(160, 200)]


def data_collator(features):
    return {key: torch.stack([f[key] for f in features]) for key in features[0]}


train_dataloader = DataLoader(train_examples, shuffle=True, collate_fn=data_collator, batch_size=per_device_train_batch_size)
eval_dataloader = DataLoader(eval_examples, collate_fn=data_collator, batch_size=32)


class TinyForSequenceClassification(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, 16)
        self.LayerNorm = nn.LayerNorm(16)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(16, 2)

    def forward(self, input_ids, labels=None):
        hidden = self.dropout(self.LayerNorm(self.embeddings(input_ids).mean(1)))
        logits = self.classifier(hidden)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


model = TinyForSequenceClassification()
no_decay = ["bias", "LayerNorm.weight"]
optimizer_grouped_parameters = [
    {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": weight_decay},
    {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
]
optimizer = torch.optim.AdamW(optimizer_grouped_parameters, lr=learning_rate)

num_update_steps_per_epoch = math.ceil(len(train_dataloader) / gradient_accumulation_steps)
max_train_steps = num_train_epochs * num_update_steps_per_epoch


def lr_lambda(current_step):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(max_train_steps - current_step) / float(max(1, max_train_steps - num_warmup_steps)))


lr_scheduler = LambdaLR(optimizer, lr_lambda)

print(f"  Num examples = {len(train_examples)}, total optimization steps = {max_train_steps}")
completed_steps = 0
with flor.checkpointing(model=model, optimizer=optimizer, lr_scheduler=lr_scheduler):
    for epoch in flor.loop("epoch", range(num_train_epochs)):
        model.train()
        total_loss = 0
        for step, batch in flor.loop("step", enumerate(train_dataloader)):
            outputs = model(**batch)
            loss = outputs["loss"]
            total_loss += loss.detach().float()
            loss = loss / gradient_accumulation_steps
            loss.backward()
            flor.log("h_step", lr_scheduler.get_last_lr()[0])  # HINDSIGHT
            if (step + 1) % gradient_accumulation_steps == 0 or step == len(train_dataloader) - 1:
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
                completed_steps += 1
            flor.log("loss", loss.item())
            if completed_steps >= max_train_steps:
                break

        model.eval()
        correct = 0
        for step, batch in enumerate(eval_dataloader):
            with torch.no_grad():
                outputs = model(**batch)
            predictions = outputs["logits"].argmax(dim=-1)
            correct += (predictions == batch["labels"]).sum().item()
        eval_metric = {"accuracy": correct / len(eval_examples)}
        print(f"epoch {epoch}: {eval_metric}")
        flor.log("accuracy", eval_metric["accuracy"])
        flor.log("h_epoch", completed_steps)  # HINDSIGHT
        flor.log("h_epoch2", total_loss.item() / len(train_dataloader))  # HINDSIGHT
