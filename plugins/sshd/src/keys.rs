//! Checking that a `--auth-key` file holds OpenSSH public keys.
//!
//! A line of an `authorized_keys` file is `[options] type base64 [comment]`;
//! the base64 blob starts with the key type again (an SSH string: a 4-byte
//! big-endian length and the name). Checking both catches the usual mistakes
//! (a private key, a PEM or PuTTY file, a truncated paste) before the
//! container exists, instead of leaving a container nobody can log in to.

/// Key types sshd accepts for public key authentication.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// DSA: valid syntax, but OpenSSH 7.0 and later refuse it by default.
const DSA: &str = "ssh-dss";

/// What an authorized-keys file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyFile {
    /// The key type of every usable key line, in order.
    pub keys: Vec<String>,
    /// 1-based numbers of lines that are neither keys, comments nor blank.
    pub bad_lines: Vec<usize>,
    /// 1-based numbers of `ssh-dss` key lines (sshd ignores them).
    pub dsa_lines: Vec<usize>,
}

/// Why a file cannot serve as `authorized_keys` at all.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyFileError {
    /// It is a private key.
    PrivateKey,
    /// It is not text.
    NotText,
    /// No line holds a usable public key.
    NoKey,
}

/// Reads an authorized-keys file.
pub fn parse_key_file(data: &[u8]) -> Result<KeyFile, KeyFileError> {
    let text = std::str::from_utf8(data).map_err(|_| KeyFileError::NotText)?;
    if text.contains("PRIVATE KEY-----") {
        return Err(KeyFileError::PrivateKey);
    }
    let mut file = KeyFile::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match key_type(line) {
            Some(kind) if kind == DSA => file.dsa_lines.push(index + 1),
            Some(kind) => file.keys.push(kind.to_owned()),
            None => file.bad_lines.push(index + 1),
        }
    }
    if file.keys.is_empty() {
        return Err(KeyFileError::NoKey);
    }
    Ok(file)
}

/// The key type of an authorized-keys line, if it holds a well-formed key.
///
/// Options before the key may contain quoted spaces, so every word is tried
/// as the key type; the blob after it must decode and name the same type.
fn key_type(line: &str) -> Option<&str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find_map(|pair| {
        let (kind, blob) = (pair[0], pair[1]);
        let known = KEY_TYPES.contains(&kind) || kind == DSA;
        (known && blob_names(blob, kind)).then_some(kind)
    })
}

/// Whether base64 `blob` decodes to an SSH key blob of type `kind`.
fn blob_names(blob: &str, kind: &str) -> bool {
    let Some(bytes) = base64_decode(blob) else {
        return false;
    };
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    // A key has material after its type name.
    rest.len() > len && &rest[..len] == kind.as_bytes()
}

/// Decodes standard base64 with `=` padding; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let last = bytes.len() / 4 - 1;
    for (i, chunk) in bytes.chunks_exact(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ed25519 public key (generated for this test, no private half kept).
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICup30W9BaE/v/BKcdPRaPCEZCTD0gzPVu8VRywBrtBq alice@example";

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGV5").unwrap(), b"hey");
        assert_eq!(base64_decode("aGk"), None);
        assert_eq!(base64_decode("a=Gk"), None);
        assert_eq!(base64_decode("aG!k"), None);
        assert_eq!(base64_decode("aGk=aGk="), None);
    }

    #[test]
    fn accepts_keys_with_options_and_comments() {
        let text = format!("# my keys\n\n{ED25519}\nfrom=\"10.0.0.1\",command=\"echo hi there\" {ED25519}\n");
        let file = parse_key_file(text.as_bytes()).unwrap();
        assert_eq!(file.keys, ["ssh-ed25519", "ssh-ed25519"]);
        assert!(file.bad_lines.is_empty() && file.dsa_lines.is_empty());
    }

    #[test]
    fn reports_bad_and_dsa_lines() {
        // The blob names ssh-ed25519, so it is no ssh-rsa key.
        let wrong_type = ED25519.replace("ssh-ed25519", "ssh-rsa");
        let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAP8= old";
        let text = format!("{ED25519}\n{wrong_type}\nnot a key\n{dsa}\n");
        let file = parse_key_file(text.as_bytes()).unwrap();
        assert_eq!(file.keys, ["ssh-ed25519"]);
        assert_eq!(file.bad_lines, [2, 3]);
        assert_eq!(file.dsa_lines, [4]);
    }

    #[test]
    fn refuses_files_without_a_usable_key() {
        assert_eq!(
            parse_key_file(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn==\n-----END OPENSSH PRIVATE KEY-----\n"),
            Err(KeyFileError::PrivateKey)
        );
        assert_eq!(parse_key_file(b"\xff\xfe"), Err(KeyFileError::NotText));
        assert_eq!(parse_key_file(b""), Err(KeyFileError::NoKey));
        assert_eq!(parse_key_file(b"ssh-ed25519 AAAA truncated\n"), Err(KeyFileError::NoKey));
        assert_eq!(parse_key_file(b"ssh-dss AAAAB3NzaC1kc3MAAACBAP8= old\n"), Err(KeyFileError::NoKey));
    }
}
