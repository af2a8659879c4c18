//! Times statement propagation into a ~1,000-line training script.
//!
//! Generates today's script (with a new step-level `flor.log`) and an old version of it (the model
//! variable renamed, a few helpers changed, the statement absent), checks that the statement is
//! placed, then times `analyze::propagate` over many runs and prints the median and minimum.
//! Run with `bench/propagate.sh` (release build). `RUNS=N` changes the number of runs.

use std::fmt::Write;
use std::time::Instant;

use flor_core::analyze::{propagate, Outcome};

/// Today's script when `new` is true, else the old version.
fn script(new: bool) -> String {
    let model = if new { "model" } else { "net" };
    let mut s = String::new();
    s.push_str("import math\nimport os\nimport random\n\nimport numpy as np\nimport torch\n");
    s.push_str("import torch.nn as nn\nimport torch.nn.functional as F\nimport flordb as flor\n");
    s.push_str("from torch.utils.data import DataLoader, Dataset\n\n\n");
    for i in 0..60 {
        let scale = if !new && i % 7 == 0 { "0.5" } else { "1.0" };
        let _ = write!(
            s,
            "def feature_{i}(batch, scale={scale}):\n\
             \x20   \"\"\"Feature transform number {i}.\"\"\"\n\
             \x20   out = []\n\
             \x20   for row in batch:\n\
             \x20       value = row * scale + {i}\n\
             \x20       if value > {i}:\n\
             \x20           value = math.log1p(value)\n\
             \x20       else:\n\
             \x20           value = -value\n\
             \x20       out.append(value)\n\
             \x20   # normalise\n\
             \x20   total = sum(out) or 1.0\n\
             \x20   return [v / total for v in out]\n\n\n"
        );
    }
    s.push_str(
        "class Block(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n",
    );
    s.push_str(
        "        self.fc = nn.Linear(width, width)\n        self.norm = nn.LayerNorm(width)\n\n",
    );
    s.push_str("    def forward(self, x):\n        return x + F.gelu(self.fc(self.norm(x)))\n\n\n");
    s.push_str("class Net(nn.Module):\n    def __init__(self, width, depth):\n        super().__init__()\n");
    s.push_str("        self.blocks = nn.ModuleList([Block(width) for _ in range(depth)])\n");
    s.push_str("        self.head = nn.Linear(width, 10)\n\n    def forward(self, x):\n");
    s.push_str("        for block in self.blocks:\n            x = block(x)\n        return self.head(x)\n\n\n");
    s.push_str("class Synthetic(Dataset):\n    def __len__(self):\n        return 4096\n\n");
    s.push_str("    def __getitem__(self, i):\n        x = torch.randn(64)\n        return x, int(x.sum() > 0)\n\n\n");
    let _ = write!(
        s,
        "lr = flor.arg(\"lr\", 1e-3)\nepochs = flor.arg(\"epochs\", 10)\n\
         train_loader = DataLoader(Synthetic(), batch_size=64, shuffle=True)\n\
         val_loader = DataLoader(Synthetic(), batch_size=256)\n\
         {model} = Net(64, 8)\n\
         optimizer = torch.optim.AdamW({model}.parameters(), lr=lr)\n\
         scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)\n\n\
         for epoch in flor.loop(\"epoch\", range(epochs)):\n\
         \x20   {model}.train()\n\
         \x20   running = 0.0\n\
         \x20   for x, y in flor.loop(\"step\", train_loader):\n\
         \x20       optimizer.zero_grad()\n\
         \x20       logits = {model}(x)\n\
         \x20       loss = F.cross_entropy(logits, y)\n\
         \x20       loss.backward()\n"
    );
    if new {
        s.push_str("        flor.log(\"grad_norm\", torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9).item())\n");
    }
    s.push_str("        optimizer.step()\n        running += loss.item()\n");
    s.push_str("        flor.log(\"loss\", loss.item())\n");
    for i in 0..12 {
        let _ = write!(
            s,
            "    stats_{i} = feature_{i}([running, epoch, {i}])\n\
             \x20   if stats_{i}[0] > 0.5:\n\
             \x20       print(\"stat {i}\", stats_{i})\n"
        );
    }
    let _ = write!(
        s,
        "    scheduler.step()\n    {model}.eval()\n    correct = total = 0\n    with torch.no_grad():\n\
         \x20       for x, y in val_loader:\n\
         \x20           correct += ({model}(x).argmax(1) == y).sum().item()\n\
         \x20           total += y.numel()\n\
         \x20   flor.log(\"val_acc\", correct / total)\n\n\
         torch.save({model}.state_dict(), \"ckpt.pt\")\n"
    );
    s
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let (new, old) = (script(true), script(false));
    let result = match propagate(&new, &old, &["grad_norm"]) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("propagate_bench: {e}");
            std::process::exit(2);
        }
    };
    match &result.outcomes[..] {
        [Outcome::Placed { line, text, .. }] if text.contains("net.parameters()") => {
            println!("placed at line {line}: {}", text.trim());
        }
        other => {
            eprintln!("propagate_bench: unexpected outcome {other:?}");
            std::process::exit(1);
        }
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let r = propagate(&new, &old, &["grad_norm"]);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(r).ok();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "new {} lines, old {} lines, {runs} runs: median {:.2} ms, min {:.2} ms",
        new.lines().count(),
        old.lines().count(),
        times[times.len() / 2],
        times[0]
    );
}
