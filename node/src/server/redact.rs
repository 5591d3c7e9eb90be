//! What of a command may be shown to operators (`SLOWLOG`, `MONITOR`): every password
//! (`AUTH`, `HELLO ... AUTH`, `ACL SETUSER >pass`, `CONFIG SET requirepass`) and every
//! argument but the key names of a command that touches a key under a secret prefix
//! (`bff:session:`, `m2m:tokens:` by default) become `(redacted)`.

use bytes::Bytes;

use crate::command::{resolve, Resolved};

/// What a hidden argument shows as.
pub const REDACTED: &str = "(redacted)";

/// `args` as they may be shown: each argument either as it is or [`REDACTED`].
pub fn redact(args: &[Bytes], secret_prefixes: &[String]) -> Vec<Bytes> {
    let hidden = Bytes::from_static(REDACTED.as_bytes());
    let mut out: Vec<Bytes> = args.to_vec();
    let name = args
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    let sub = args.get(1).map(|s| s.to_ascii_lowercase());
    match (name.as_slice(), sub.as_deref()) {
        (b"auth", _) => {
            for arg in out.iter_mut().skip(1) {
                *arg = hidden.clone();
            }
            return out;
        }
        (b"hello", _) => {
            if let Some(at) = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")) {
                if let Some(pass) = out.get_mut(at + 2) {
                    *pass = hidden.clone();
                }
            }
            return out;
        }
        (b"acl", Some(b"setuser")) => {
            for arg in out.iter_mut().skip(3) {
                if matches!(arg.first(), Some(b'>' | b'<')) {
                    *arg = hidden.clone();
                }
            }
            return out;
        }
        (b"config", Some(b"set")) => {
            let mut i = 2;
            while i + 1 < out.len() {
                let secret = out[i].eq_ignore_ascii_case(b"requirepass")
                    || out[i].eq_ignore_ascii_case(b"masterauth");
                if secret {
                    out[i + 1] = hidden.clone();
                }
                i += 2;
            }
            return out;
        }
        _ => {}
    }
    let Resolved::Command(spec) = resolve(args) else {
        return out;
    };
    let keys = spec.keys.extract(args);
    let secret = keys.iter().any(|key| {
        secret_prefixes
            .iter()
            .any(|prefix| key.starts_with(prefix.as_bytes()))
    });
    if !secret {
        return out;
    }
    // Key names stay (an operator needs them); every other argument may carry the secret.
    for (i, arg) in args.iter().enumerate().skip(1) {
        if !keys.iter().any(|key| std::ptr::eq(*key, arg)) {
            out[i] = hidden.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(line: &str) -> String {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let prefixes = crate::config::Config::default().secret_prefixes;
        redact(&args, &prefixes)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(shown("AUTH pw"), "AUTH (redacted)");
        assert_eq!(shown("AUTH user pw"), "AUTH (redacted) (redacted)");
        assert_eq!(
            shown("HELLO 3 AUTH default pw SETNAME x"),
            "HELLO 3 AUTH default (redacted) SETNAME x"
        );
        assert_eq!(
            shown("ACL SETUSER u on >pw <old ~k*"),
            "ACL SETUSER u on (redacted) (redacted) ~k*"
        );
        assert_eq!(
            shown("CONFIG SET maxclients 10 requirepass pw"),
            "CONFIG SET maxclients 10 requirepass (redacted)"
        );
    }

    #[test]
    fn values_under_secret_prefixes_never_show_but_keys_do() {
        assert_eq!(
            shown("SET m2m:tokens:a tok EX 60"),
            "SET m2m:tokens:a (redacted) (redacted) (redacted)"
        );
        assert_eq!(
            shown("MSET cache:a 1 bff:session:x tok"),
            "MSET cache:a (redacted) bff:session:x (redacted)"
        );
        assert_eq!(shown("GET bff:session:x"), "GET bff:session:x");
        assert_eq!(shown("SET cache:a v"), "SET cache:a v");
    }
}
