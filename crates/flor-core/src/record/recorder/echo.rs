//! The line flordb 4.0.1 printed for every `flor.log` (`epoch: 2, step: 7, loss: 0.25`),
//! for users who turn the echo on (`FLOR_ECHO=1`, `flor.set_echo(True)`).

use super::super::{Item, Value};
use super::Recorder;

impl Recorder {
    /// The echo of logging `value` as `name` here: each enclosing loop with its item
    /// (its position when the item is not a plain value), then the name and value.
    pub fn echo_line(&self, name: &str, value: &Value) -> String {
        let mut parts: Vec<String> = self
            .frames
            .iter()
            .filter_map(|f| {
                let at = match &f.item {
                    Some(Item::Int(i)) => i.to_string(),
                    Some(Item::Text(t)) => t.to_string(),
                    None => f.iteration?.to_string(),
                };
                Some(format!("{}: {at}", f.name.as_str()))
            })
            .collect();
        parts.push(format!("{name}: {}", value.display()));
        parts.join(", ")
    }
}
