//! Bytes in any encoding to UTF-8, a buffer at a time: the [`Read`] the CSV reader reads.
//!
//! [`DecodeReader`] feeds the raw bytes through encoding_rs's streaming decoder (a character
//! split between two reads is carried over by the decoder), so a file of any size is read in
//! constant memory. It also notes where the line breaks of the decoded text are, for
//! [`DecodeReader::line_of_record`]: csv's own line numbers are off after blank lines and
//! with CRLF endings (BurntSushi/rust-csv#208, #395), so lines are counted here from the byte
//! positions csv reports.

use std::collections::VecDeque;
use std::io::{self, Read};

use encoding_rs::{CoderResult, Decoder, Encoding, WINDOWS_1250};

/// Raw bytes read from the source at a time.
const RAW_CHUNK: usize = 64 << 10;

pub(crate) struct DecodeReader<R> {
    inner: R,
    decoder: Decoder,
    raw: Vec<u8>,
    /// `raw[raw_at..raw_end]` is read but not decoded yet.
    raw_at: usize,
    raw_end: usize,
    /// The source is exhausted.
    eof: bool,
    /// The decoder has been flushed: nothing more will come.
    done: bool,
    out: Vec<u8>,
    /// `out[out_at..out_end]` is decoded but not handed out yet.
    out_at: usize,
    out_end: usize,
    romanian: bool,
    lossy: bool,
    raw_read: u64,
    /// Decoded bytes handed out so far.
    produced: u64,
    /// Positions of the `\r` (`true`) and `\n` bytes handed out and not yet passed by
    /// [`DecodeReader::line_of_record`].
    breaks: VecDeque<(u64, bool)>,
    /// Line breaks passed so far.
    lines: u64,
}

impl<R: Read> DecodeReader<R> {
    /// Decodes `inner` as `encoding`; a byte-order mark of that encoding is dropped.
    pub fn new(inner: R, encoding: &'static Encoding) -> Self {
        DecodeReader {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            raw: vec![0; RAW_CHUNK],
            raw_at: 0,
            raw_end: 0,
            eof: false,
            done: false,
            out: vec![0; RAW_CHUNK * 3 + 16],
            out_at: 0,
            out_end: 0,
            romanian: encoding == WINDOWS_1250,
            lossy: false,
            raw_read: 0,
            produced: 0,
            breaks: VecDeque::new(),
            lines: 0,
        }
    }

    /// Some bytes read so far could not be decoded and became U+FFFD.
    pub fn lossy(&self) -> bool {
        self.lossy
    }

    /// Raw bytes read from the source so far.
    pub fn raw_read(&self) -> u64 {
        self.raw_read
    }

    /// The 1-based physical line of the record csv says starts at decoded byte `byte`: csv
    /// points before the line terminators (and blank lines) it skipped, so step over those
    /// first. A line ends at `\n`, `\r\n` or a lone `\r`. Records must be asked for in order.
    pub fn line_of_record(&mut self, byte: u64) -> u64 {
        let mut at = byte;
        while let Some(&(pos, cr)) = self.breaks.front() {
            if pos > at {
                break;
            }
            if pos == at {
                at += 1;
            }
            self.breaks.pop_front();
            // `\r\n` ends one line, at its `\n`.
            let crlf = cr
                && self
                    .breaks
                    .front()
                    .is_some_and(|&(p, c)| p == pos + 1 && !c);
            if !crlf {
                self.lines += 1;
            }
        }
        1 + self.lines
    }

    /// Decodes the next raw bytes into `out`; `false` when there is nothing more.
    fn fill(&mut self) -> io::Result<bool> {
        while !self.done {
            if self.raw_at == self.raw_end && !self.eof {
                let n = self.inner.read(&mut self.raw)?;
                self.raw_at = 0;
                self.raw_end = n;
                self.eof = n == 0;
                self.raw_read += n as u64;
            }
            let (result, read, written, replaced) = self.decoder.decode_to_utf8(
                &self.raw[self.raw_at..self.raw_end],
                &mut self.out,
                self.eof,
            );
            self.raw_at += read;
            self.lossy |= replaced;
            if self.eof && result == CoderResult::InputEmpty {
                self.done = true;
            }
            if self.romanian {
                super::decode::romanian_comma_below(&mut self.out[..written]);
            }
            self.out_at = 0;
            self.out_end = written;
            if written > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_at == self.out_end && !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_end - self.out_at);
        buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        for (i, b) in buf[..n].iter().enumerate() {
            if matches!(b, b'\r' | b'\n') {
                self.breaks
                    .push_back((self.produced + i as u64, *b == b'\r'));
            }
        }
        self.out_at += n;
        self.produced += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader handing out at most `n` bytes per read.
    struct Trickle<R>(R, usize);

    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn characters_split_between_reads_decode_whole() {
        let text = "id,first_name\nc1,Ștefan\nc2,Мария 😀\n".repeat(50);
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        for chunk in [1, 3, 7, 64] {
            let mut got = String::new();
            DecodeReader::new(Trickle(io::Cursor::new(&le), chunk), encoding_rs::UTF_16LE)
                .read_to_string(&mut got)
                .unwrap();
            assert_eq!(got, text, "chunk {chunk}");
            let mut got = String::new();
            let mut r = DecodeReader::new(
                Trickle(io::Cursor::new(text.as_bytes()), chunk),
                encoding_rs::UTF_8,
            );
            r.read_to_string(&mut got).unwrap();
            assert_eq!((got.as_str(), r.lossy()), (text.as_str(), false));
        }
    }

    #[test]
    fn line_numbers_from_bytes() {
        let text = "\n\na,b\r\n1,2\r\n\r\n\"x\r\ny\",5\r6,7\n";
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(4)
            .from_reader(DecodeReader::new(
                Trickle(io::Cursor::new(text.as_bytes()), 3),
                encoding_rs::UTF_8,
            ));
        let mut got = Vec::new();
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).unwrap() {
            let byte = record.position().unwrap().byte();
            let line = reader.get_mut().line_of_record(byte);
            got.push((record[0].to_string(), line));
        }
        let want = [("a", 3), ("1", 4), ("x\r\ny", 6), ("6", 8)].map(|(s, l)| (s.to_string(), l));
        assert_eq!(got, want);
    }
}
