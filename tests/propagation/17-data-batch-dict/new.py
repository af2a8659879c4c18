import flordb as flor
from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup
from data import make_loader

model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
loader = make_loader("train", batch_size=16, num_workers=2, pin_memory=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
scheduler = get_linear_schedule_with_warmup(optimizer, 100, 1000)

for epoch in flor.loop("epoch", range(3)):
    for batch in flor.loop("step", loader):
        out = model(**batch)
        out.loss.backward()
        flor.log("lr", scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        flor.log("loss", out.loss.item())
