//! Output capture: what a script prints becomes records (`type = 2`) with the loop
//! context they were printed in, as flordb 4.0.1 keeps them (spec §7.1). The Python
//! layer tees `sys.stdout`, `sys.stderr` and `logging` into [`Capture`]; this module owns
//! what a line is: text split on `\n`, only what follows the last `\r` kept (a progress
//! bar's redraws are one line, its last state), trailing whitespace stripped, blank lines
//! dropped, long lines cut at [`Limits::max_line`], the same line in the same context
//! stored once, and at most [`Limits::max_records`] lines a run.

/// Where a captured line came from; its record's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn channel(self) -> &'static str {
        match self {
            Stream::Stdout => "io::stdout",
            Stream::Stderr => "io::stderr",
        }
    }
}

/// The channel of a `logging` record at `level` (`io::log::warning`).
pub fn log_channel(level: &str) -> String {
    format!("io::log::{}", level.to_ascii_lowercase())
}

/// How much capture keeps (flordb 4.0.1's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Characters a line keeps; the rest is cut and marked.
    pub max_line: usize,
    /// Lines a run keeps; later ones are dropped, with one notice.
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 4096,
            max_records: 10_000,
        }
    }
}

/// The mark a cut line ends with.
pub const TRUNCATED: &str = " ...[flor: line truncated]";

/// The capture state of one run: a partial line per stream, what was stored last, and
/// how many lines were stored.
#[derive(Debug, Default)]
pub struct Capture {
    pub limits: Limits,
    partial: [String; 2],
    /// The last stored line: channel, its context key, text.
    last: Option<(String, u64, String)>,
    stored: usize,
    /// Whether the run was told that the ceiling was reached.
    pub ceiling_told: bool,
}

/// What to do with one finished line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Store(String),
    /// Blank, or the same as the last line in the same context.
    Skip,
    /// Over the run's ceiling (the first time: tell the user).
    OverCeiling {
        first: bool,
    },
}

impl Capture {
    /// Takes text written to `stream`; returns the lines it completed, unprocessed.
    pub fn write(&mut self, stream: Stream, text: &str) -> Vec<String> {
        let max = self.limits.max_line;
        let buf = &mut self.partial[stream as usize];
        let mut done = Vec::new();
        let mut rest = text;
        while let Some(nl) = rest.find('\n') {
            buf.push_str(&rest[..nl]);
            done.push(std::mem::take(buf));
            rest = &rest[nl + 1..];
        }
        buf.push_str(rest);
        // A bar redrawn with `\r` and never ended keeps only its last state; any other
        // unterminated text keeps no more than a line's worth.
        if let Some(cr) = buf.rfind('\r') {
            buf.drain(..=cr);
        }
        // (One character over the limit is kept, so that the line is marked as cut.)
        if buf.len() > 4 * (max + 1) {
            if let Some((cut, _)) = buf.char_indices().nth(max + 1) {
                buf.truncate(cut);
            }
        }
        done
    }

    /// Whether some text waits for its line to end.
    pub fn has_partial(&self) -> bool {
        self.partial.iter().any(|p| !p.is_empty())
    }

    /// The partial lines left at the end of a run, with their streams.
    pub fn drain_partial(&mut self) -> Vec<(Stream, String)> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|s| {
                let text = std::mem::take(&mut self.partial[s as usize]);
                (!text.is_empty()).then_some((s, text))
            })
            .collect()
    }

    /// Decides what a finished line of `channel` becomes, in the context `ctx_key`.
    pub fn judge(&mut self, channel: &str, ctx_key: u64, raw: &str) -> Verdict {
        let Some(text) = clean(raw, self.limits.max_line) else {
            return Verdict::Skip;
        };
        if let Some((c, k, t)) = &self.last {
            if c == channel && *k == ctx_key && *t == text {
                return Verdict::Skip;
            }
        }
        if self.stored >= self.limits.max_records {
            let first = !self.ceiling_told;
            self.ceiling_told = true;
            return Verdict::OverCeiling { first };
        }
        self.stored += 1;
        self.last = Some((channel.to_string(), ctx_key, text.clone()));
        Verdict::Store(text)
    }

    /// A new run starts counting and deduplicating afresh (the limits stay).
    pub fn reset(&mut self) {
        let limits = self.limits;
        *self = Capture::default();
        self.limits = limits;
    }
}

/// A line as it is stored: after its last `\r`, without terminal colour codes and
/// trailing whitespace, cut at `max_line` characters; `None` when nothing is left.
pub fn clean(raw: &str, max_line: usize) -> Option<String> {
    let after_cr = raw.rsplit('\r').next().unwrap_or(raw);
    let plain = without_escapes(after_cr);
    let text = plain.trim_end();
    if text.trim_start().is_empty() {
        return None;
    }
    match text.char_indices().nth(max_line) {
        Some((cut, _)) => Some(format!("{}{TRUNCATED}", &text[..cut])),
        None => Some(text.to_string()),
    }
}

/// `text` without ANSI escape sequences (colours, cursor moves: `ESC [ ... letter`, and
/// `ESC ] ... BEL` titles), which the terminal shows and a record should not hold.
fn without_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                        if c == '\u{1b}' {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_a_progress_bar_is_its_last_state() {
        let mut c = Capture::default();
        assert!(c.write(Stream::Stdout, "epoch 0 | loss 0.5").is_empty());
        assert_eq!(
            c.write(Stream::Stdout, "\nnext\n"),
            vec!["epoch 0 | loss 0.5", "next"]
        );
        for pct in [10, 50, 100] {
            c.write(Stream::Stderr, &format!("\r{pct}%|####"));
        }
        assert_eq!(c.write(Stream::Stderr, "\n"), vec!["100%|####"]);
        // The partial buffer dropped the redraws before the last `\r` as they came.
        c.write(Stream::Stderr, "\r 1%\r 2%\r 3%|#  ");
        assert_eq!(
            c.drain_partial(),
            vec![(Stream::Stderr, " 3%|#  ".to_string())]
        );
        assert_eq!(
            clean("\r10%\r100%|####|  \t", 100).as_deref(),
            Some("100%|####|")
        );
        assert_eq!(
            clean("\u{1b}[1;32mloss\u{1b}[0m 0.5\u{1b}]0;title\u{7}", 100).as_deref(),
            Some("loss 0.5")
        );
    }

    #[test]
    fn blank_repeated_long_and_excess_lines() {
        let mut c = Capture {
            limits: Limits {
                max_line: 5,
                max_records: 2,
            },
            ..Capture::default()
        };
        assert_eq!(c.judge("io::stdout", 1, "   "), Verdict::Skip);
        assert_eq!(
            c.judge("io::stdout", 1, "abcdefgh"),
            Verdict::Store(format!("abcde{TRUNCATED}"))
        );
        assert_eq!(c.judge("io::stdout", 1, "abcdefgh"), Verdict::Skip);
        // The same line in the next iteration is stored again.
        assert_eq!(
            c.judge("io::stdout", 2, "abcdefgh"),
            Verdict::Store(format!("abcde{TRUNCATED}"))
        );
        assert_eq!(
            c.judge("io::stdout", 3, "x"),
            Verdict::OverCeiling { first: true }
        );
        assert_eq!(
            c.judge("io::stdout", 3, "y"),
            Verdict::OverCeiling { first: false }
        );
        c.reset();
        assert_eq!(c.limits.max_records, 2);
        assert_eq!(c.judge("io::stdout", 3, "x"), Verdict::Store("x".into()));
    }

    #[test]
    fn an_endless_unterminated_write_stays_bounded() {
        let mut c = Capture {
            limits: Limits {
                max_line: 10,
                max_records: 10,
            },
            ..Capture::default()
        };
        for _ in 0..1000 {
            c.write(Stream::Stdout, "ééééé");
        }
        let rest = c.drain_partial();
        assert!(rest[0].1.len() <= 4 * 11 + 10);
        assert_eq!(
            clean(&rest[0].1, 10),
            Some(format!("éééééééééé{TRUNCATED}"))
        );
        assert_eq!(log_channel("WARNING"), "io::log::warning");
    }
}
