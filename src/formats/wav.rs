//! RIFF/WAVE files with 16-bit PCM samples (the PhysioNet 2016 heart sounds are such files).

use std::io::{Seek, SeekFrom, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm16 {
    pub rate: u32,
    pub channels: u16,
    /// Interleaved, frame by frame.
    pub samples: Vec<i16>,
}

/// Reads a PCM 16-bit WAV file, walking its chunks (`fmt `, `data`, others skipped).
pub fn read_pcm16(bytes: &[u8]) -> Result<Pcm16, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut pos = 12;
    let mut format = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap_or_default()) as usize;
        let body = bytes.get(pos + 8..(pos + 8 + len).min(bytes.len())).ok_or("chunk past the end")?;
        match id {
            b"fmt " if body.len() >= 16 => {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                if tag != 1 || bits != 16 || channels == 0 {
                    return Err(format!("only 16-bit PCM is read (format {tag}, {bits} bits, {channels} channels)"));
                }
                format = Some((rate, channels));
            }
            b"data" => {
                let (rate, channels) = format.ok_or("data before fmt")?;
                let samples = body.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
                return Ok(Pcm16 { rate, channels, samples });
            }
            _ => {}
        }
        pos += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// A WAV file written as samples arrive; the header's sizes are kept true after every append.
pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: u16,
    data_bytes: u32,
}

impl<W: Write + Seek> WavWriter<W> {
    pub fn create(mut out: W, rate: u32, channels: u16) -> std::io::Result<Self> {
        let block = channels * 2;
        let mut h = Vec::with_capacity(44);
        h.extend(b"RIFF");
        h.extend(36u32.to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(1u16.to_le_bytes());
        h.extend(channels.to_le_bytes());
        h.extend(rate.to_le_bytes());
        h.extend(rate.saturating_mul(u32::from(block)).to_le_bytes());
        h.extend(block.to_le_bytes());
        h.extend(16u16.to_le_bytes());
        h.extend(b"data");
        h.extend(0u32.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self { out, channels, data_bytes: 0 })
    }

    /// Appends interleaved frames; the file is a complete WAV file after it.
    pub fn append(&mut self, samples: &[i16]) -> std::io::Result<()> {
        self.append_data(samples)?;
        self.update_header()
    }

    /// Appends interleaved frames without bringing the header's sizes up to date (the file reads
    /// as the shorter WAV it was until [`WavWriter::update_header`]).
    pub fn append_data(&mut self, samples: &[i16]) -> std::io::Result<()> {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.out.seek(SeekFrom::End(0))?;
        self.out.write_all(&bytes)?;
        self.data_bytes = self.data_bytes.saturating_add(bytes.len() as u32);
        Ok(())
    }

    /// Writes the sizes of everything appended into the header.
    pub fn update_header(&mut self) -> std::io::Result<()> {
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&self.data_bytes.saturating_add(36).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&self.data_bytes.to_le_bytes())?;
        self.out.flush()
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The file (or buffer) written to.
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back() {
        let mut w = WavWriter::create(std::io::Cursor::new(Vec::new()), 2000, 1).unwrap();
        w.append(&[1, -2, 3]).unwrap();
        w.append(&[i16::MIN, i16::MAX]).unwrap();
        let bytes = w.out.into_inner();
        assert_eq!(bytes.len(), 44 + 10);
        let pcm = read_pcm16(&bytes).unwrap();
        assert_eq!(pcm, Pcm16 { rate: 2000, channels: 1, samples: vec![1, -2, 3, i16::MIN, i16::MAX] });
        assert!(read_pcm16(b"RIFX....WAVE").is_err());
        // A rate no sound card has is written, not a panic.
        assert!(WavWriter::create(std::io::Cursor::new(Vec::new()), u32::MAX, 16).is_ok());
    }
}
