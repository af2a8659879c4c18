import flordb as flor
from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup
from data import make_loader

model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
loader = make_loader("train", batch_size=16)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
scheduler = get_linear_schedule_with_warmup(optimizer, 100, 1000)

for epoch in flor.loop("epoch", range(3)):
    for input_ids, attention_mask, labels in flor.loop("step", loader):
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        out.loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        flor.log("loss", out.loss.item())
