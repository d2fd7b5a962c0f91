//! The progress bar: bytes of all input files, with rate and ETA; then a
//! counter while placing. Only drawn when stderr is a terminal, so logs and
//! CI output stay clean.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: ProgressBar,
    /// Bytes of the files finished before the current one.
    base: u64,
}

impl Progress {
    pub fn new(enabled: bool, total_bytes: u64) -> Progress {
        let bar = if enabled && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total_bytes);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar, base: 0 }
    }

    pub fn file(&mut self, name: &str) {
        self.bar.set_message(name.to_string());
    }

    /// `bytes` read of the current file.
    pub fn at(&self, bytes: u64) {
        self.bar.set_position(self.base + bytes);
    }

    pub fn file_done(&mut self, size: u64) {
        self.base += size;
        self.bar.set_position(self.base);
    }

    pub fn placing(&self, placed: u64) {
        self.bar.set_message(format!("placing: {placed} messages"));
        self.bar.tick();
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
