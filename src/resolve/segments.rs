//! Text-only half of the resolver: split, decode once, refuse path syntax.
//!
//! Nothing here touches the file system. The rules are deliberately wider
//! than Linux needs, because content folders are often copies of, or mounts
//! of, Windows shares (NTFS via ntfs-3g/ntfs3, SMB via cifs), where `\`, `:`,
//! device names, trailing dots and 8.3 short names are path syntax too. A
//! software package never legitimately contains such names, since Windows
//! clients could not store them.

use percent_encoding::percent_decode_str;

use super::ResolveError;

/// Split an already-routed path remainder (still percent-encoded, as it came
/// off the wire, without the query) into decoded segments.
///
/// A single leading `/` (the separator after the virtual path's prefix) is
/// ignored. Each segment is percent-decoded exactly once, so `%252e` becomes
/// the literal name `%2e`, never `.`. Refused: invalid `%` escapes and
/// non-UTF-8 results ([`ResolveError::BadEncoding`]); decoded `/`, `\`, NUL,
/// control characters (C0, DEL and C1), `.` and `..`, empty segments,
/// dotfiles, any `:` (drive letters, NTFS streams), DOS device names with or
/// without extension, names ending in a dot or space, and 8.3 short-name
/// aliases such as `DISTPO~1` ([`ResolveError::ForbiddenSegment`]).
///
/// Allowed and kept as they are: `+`, spaces inside names, non-ASCII
/// letters, `%` (as `%25`), `$`, `~` (outside the short-name pattern), `#`
/// (as `%23`).
pub fn decode_segments(raw: &str) -> Result<Vec<String>, ResolveError> {
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    if rest.is_empty() {
        // The virtual path's own URL names its folder, never a file.
        return Err(ResolveError::ForbiddenSegment("empty path"));
    }
    rest.split('/').map(decode_one).collect()
}

/// Decode one raw segment and check the result.
fn decode_one(raw: &str) -> Result<String, ResolveError> {
    check_escapes(raw)?;
    // `decode_utf8` uses the standard UTF-8 validator, which refuses overlong
    // forms (`%c0%ae`), surrogates and truncated sequences.
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ResolveError::BadEncoding)?;
    check_segment(&decoded)?;
    Ok(decoded.into_owned())
}

/// `percent_decode_str` passes malformed escapes through literally; we refuse
/// them instead, so that one spelling has one meaning.
fn check_escapes(raw: &str) -> Result<(), ResolveError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(ResolveError::BadEncoding)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(ResolveError::BadEncoding);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Check one decoded segment. Also used by `open_beneath` as a second wall,
/// so that segments that did not come from [`decode_segments`] are held to the
/// same rules.
pub(crate) fn check_segment(seg: &str) -> Result<(), ResolveError> {
    let forbid = |why| Err(ResolveError::ForbiddenSegment(why));
    if seg.is_empty() {
        return forbid("empty segment");
    }
    if seg == "." || seg == ".." {
        return forbid("dot segment");
    }
    for c in seg.chars() {
        match c {
            '/' => return forbid("encoded slash"),
            '\\' => return forbid("backslash"),
            '\0' => return forbid("NUL"),
            // `is_control` is Unicode Cc: U+0000..U+001F, U+007F..U+009F.
            c if c.is_control() => return forbid("control character"),
            ':' => {
                let b = seg.as_bytes();
                return if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
                    forbid("drive letter")
                } else {
                    // NTFS alternate data stream (`file::$DATA`, ntfs-3g's
                    // `streams_interface=windows`) or a name Windows cannot hold.
                    forbid("colon")
                };
            }
            _ => {}
        }
    }
    if seg.starts_with('.') {
        // Covers `.distpoint/`, `.git`, `.htpasswd` and `...`.
        return forbid("dotfile");
    }
    if seg.ends_with('.') || seg.ends_with(' ') {
        // Windows strips these, so `file.` and `file ` alias `file`.
        return forbid("trailing dot or space");
    }
    if is_device_name(seg) {
        return forbid("device name");
    }
    if is_short_name_alias(seg) {
        // On NTFS/SMB `DISTPO~1` opens `.distpoint`: it would bypass the
        // dotfile rule and any name-based rule the caller has.
        return forbid("short name alias");
    }
    Ok(())
}

/// DOS device names, which Windows resolves in every folder, with any
/// extension and any trailing spaces before it (`con .txt`).
fn is_device_name(seg: &str) -> bool {
    let base = seg.split('.').next().unwrap_or(seg).trim_end_matches(' ');
    let upper = base.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" | "CLOCK$"
    ) {
        return true;
    }
    // COM0-9 and LPT0-9, plus the superscript digits Windows also accepts.
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let (digit, end) = (chars.next(), chars.next());
    (prefix == "COM" || prefix == "LPT")
        && end.is_none()
        && matches!(digit, Some('0'..='9' | '¹' | '²' | '³'))
}

/// An 8.3 short name with a generated tail: at most 8 characters before an
/// optional single dot, at most 3 after, and `~` followed by a digit in the
/// base (`PROGRA~1`, `DI8F2A~1.TXT`).
fn is_short_name_alias(seg: &str) -> bool {
    let (base, ext) = seg.split_once('.').unwrap_or((seg, ""));
    if base.chars().count() > 8 || ext.chars().count() > 3 || ext.contains('.') {
        return false;
    }
    base.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'~' && w[1].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule that refused `raw`; panics if it was not refused by a rule.
    fn reason(raw: &str) -> &'static str {
        match decode_segments(raw) {
            Err(ResolveError::ForbiddenSegment(why)) => why,
            other => panic!("{raw:?}: expected ForbiddenSegment, got {other:?}"),
        }
    }

    fn bad_encoding(raw: &str) -> bool {
        matches!(decode_segments(raw), Err(ResolveError::BadEncoding))
    }

    fn ok(raw: &str) -> Vec<String> {
        decode_segments(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    // ---- refused: dot segments in every spelling ----

    #[test]
    fn dotdot_raw() {
        assert_eq!(reason("a/../b"), "dot segment");
    }

    #[test]
    fn dotdot_encoded_lower() {
        assert_eq!(reason("%2e%2e/etc/passwd"), "dot segment");
    }

    #[test]
    fn dotdot_encoded_mixed_case() {
        assert_eq!(reason("%2E%2e/etc/passwd"), "dot segment");
    }

    #[test]
    fn dotdot_half_encoded() {
        assert_eq!(reason(".%2e/etc/passwd"), "dot segment");
    }

    #[test]
    fn dotdot_half_encoded_other_half() {
        assert_eq!(reason("%2e./etc/passwd"), "dot segment");
    }

    #[test]
    fn single_dot() {
        assert_eq!(reason("a/./b"), "dot segment");
    }

    #[test]
    fn single_dot_encoded() {
        assert_eq!(reason("a/%2e/b"), "dot segment");
    }

    #[test]
    fn double_encoded_dotdot_decodes_once_to_a_literal_name() {
        assert_eq!(ok("%252e%252e/x"), vec!["%2e%2e", "x"]);
    }

    #[test]
    fn overlong_dot_is_bad_encoding() {
        assert!(bad_encoding("%c0%ae%c0%ae/etc/passwd"));
    }

    #[test]
    fn overlong_slash_is_bad_encoding() {
        assert!(bad_encoding("..%c0%afetc"));
    }

    #[test]
    fn overlong_dot_three_bytes_is_bad_encoding() {
        assert!(bad_encoding("%e0%80%ae%e0%80%ae"));
    }

    #[test]
    fn encoded_surrogate_is_bad_encoding() {
        assert!(bad_encoding("%ed%a0%80"));
    }

    #[test]
    fn lone_continuation_byte_is_bad_encoding() {
        assert!(bad_encoding("a%80b"));
    }

    #[test]
    fn invalid_escape_non_hex() {
        assert!(bad_encoding("a%zzb"));
    }

    #[test]
    fn invalid_escape_truncated() {
        assert!(bad_encoding("a%2"));
    }

    #[test]
    fn invalid_escape_bare_percent() {
        assert!(bad_encoding("100%"));
    }

    #[test]
    fn invalid_escape_sign_is_not_hex() {
        // `u8::from_str_radix` would take "+f"; we must not.
        assert!(bad_encoding("a%+fb"));
    }

    // ---- refused: separators ----

    #[test]
    fn encoded_slash_lower() {
        assert_eq!(reason("a%2fb"), "encoded slash");
    }

    #[test]
    fn encoded_slash_upper() {
        assert_eq!(reason("..%2Fetc"), "encoded slash");
    }

    #[test]
    fn encoded_backslash() {
        assert_eq!(reason("..%5cwindows"), "backslash");
    }

    #[test]
    fn raw_backslash() {
        assert_eq!(reason("a\\b"), "backslash");
    }

    // ---- refused: NUL and control characters ----

    #[test]
    fn encoded_nul() {
        assert_eq!(reason("file.msi%00.txt"), "NUL");
    }

    #[test]
    fn encoded_newline() {
        assert_eq!(reason("a%0ab"), "control character");
    }

    #[test]
    fn encoded_carriage_return() {
        assert_eq!(reason("a%0db"), "control character");
    }

    #[test]
    fn encoded_tab() {
        assert_eq!(reason("a%09b"), "control character");
    }

    #[test]
    fn encoded_del() {
        assert_eq!(reason("a%7fb"), "control character");
    }

    #[test]
    fn encoded_c1_control() {
        // U+0085 NEXT LINE, UTF-8 C2 85.
        assert_eq!(reason("a%c2%85b"), "control character");
    }

    #[test]
    fn encoded_c1_control_last() {
        // U+009F, UTF-8 C2 9F.
        assert_eq!(reason("a%c2%9fb"), "control character");
    }

    #[test]
    fn raw_control_character() {
        assert_eq!(reason("a\u{1b}b"), "control character");
    }

    // ---- refused: Windows path syntax ----

    #[test]
    fn drive_letter_alone() {
        assert_eq!(reason("c:"), "drive letter");
    }

    #[test]
    fn drive_relative_path() {
        assert_eq!(reason("C:foo"), "drive letter");
    }

    #[test]
    fn drive_letter_encoded_colon() {
        assert_eq!(reason("C%3a%5cWindows"), "drive letter");
    }

    #[test]
    fn alternate_data_stream() {
        assert_eq!(reason("setup.msi::$DATA"), "colon");
    }

    #[test]
    fn device_con() {
        assert_eq!(reason("CON"), "device name");
    }

    #[test]
    fn device_con_lower_with_extension() {
        assert_eq!(reason("con.txt"), "device name");
    }

    #[test]
    fn device_nul_with_extension() {
        assert_eq!(reason("NUL.txt"), "device name");
    }

    #[test]
    fn device_lpt1_mixed_case() {
        assert_eq!(reason("Lpt1"), "device name");
    }

    #[test]
    fn device_com9_double_extension() {
        assert_eq!(reason("sub/com9.tar.gz"), "device name");
    }

    #[test]
    fn device_superscript_com() {
        assert_eq!(reason("COM%C2%B9"), "device name");
    }

    #[test]
    fn device_superscript_lpt() {
        assert_eq!(reason("lpt\u{b3}.log"), "device name");
    }

    #[test]
    fn device_conin() {
        assert_eq!(reason("CONIN$"), "device name");
    }

    #[test]
    fn device_conout_with_extension() {
        assert_eq!(reason("conout$.txt"), "device name");
    }

    #[test]
    fn device_with_space_before_extension() {
        assert_eq!(reason("aux%20.txt"), "device name");
    }

    #[test]
    fn device_prn_in_subfolder() {
        assert_eq!(reason("PRN/file.msi"), "device name");
    }

    #[test]
    fn trailing_dot() {
        assert_eq!(reason("file."), "trailing dot or space");
    }

    #[test]
    fn trailing_space() {
        assert_eq!(reason("file%20"), "trailing dot or space");
    }

    #[test]
    fn trailing_raw_space() {
        assert_eq!(reason("file "), "trailing dot or space");
    }

    #[test]
    fn short_name_alias_of_dotfolder() {
        assert_eq!(reason("DISTPO~1/manifest.json"), "short name alias");
    }

    #[test]
    fn short_name_alias_with_extension() {
        assert_eq!(reason("setup~12.exe"), "short name alias");
    }

    // ---- refused: dotfiles and empty segments ----

    #[test]
    fn dotfile() {
        assert_eq!(reason(".hidden"), "dotfile");
    }

    #[test]
    fn distpoint_folder() {
        assert_eq!(reason(".distpoint/manifest.json"), "dotfile");
    }

    #[test]
    fn encoded_dotfile() {
        assert_eq!(reason("%2edistpoint/manifest.json"), "dotfile");
    }

    #[test]
    fn three_dots() {
        assert_eq!(reason("..."), "dotfile");
    }

    #[test]
    fn empty_segment_in_the_middle() {
        assert_eq!(reason("a//b"), "empty segment");
    }

    #[test]
    fn trailing_slash() {
        assert_eq!(reason("sub/"), "empty segment");
    }

    #[test]
    fn two_leading_slashes() {
        assert_eq!(reason("//etc/passwd"), "empty segment");
    }

    #[test]
    fn empty_path() {
        assert_eq!(reason(""), "empty path");
    }

    #[test]
    fn lone_slash() {
        assert_eq!(reason("/"), "empty path");
    }

    // ---- allowed ----

    #[test]
    fn plain_path_with_leading_slash() {
        assert_eq!(ok("/sub/setup.msi"), vec!["sub", "setup.msi"]);
    }

    #[test]
    fn plain_path_without_leading_slash() {
        assert_eq!(ok("sub/setup.msi"), vec!["sub", "setup.msi"]);
    }

    #[test]
    fn plus_is_literal() {
        assert_eq!(ok("c++/a+b.zip"), vec!["c++", "a+b.zip"]);
    }

    #[test]
    fn spaces_and_non_ascii() {
        assert_eq!(ok("Paquet%20%C3%A9t%C3%A9.msi"), vec!["Paquet été.msi"]);
    }

    #[test]
    fn raw_non_ascii() {
        assert_eq!(ok("Paquet été.msi"), vec!["Paquet été.msi"]);
    }

    #[test]
    fn percent_hash_dollar_tilde() {
        assert_eq!(ok("100%25/%23x/$y/~z"), vec!["100%", "#x", "$y", "~z"]);
    }

    #[test]
    fn device_like_but_longer_names() {
        assert_eq!(ok("CONSOLE/COM10/lpt/nul_/auxiliary.txt").len(), 5);
    }

    #[test]
    fn dot_inside_and_double_extension() {
        assert_eq!(ok("v1.2/app.tar.gz"), vec!["v1.2", "app.tar.gz"]);
    }

    #[test]
    fn tilde_outside_short_name_pattern() {
        assert_eq!(ok("backup~/long-name~1-release.zip").len(), 2);
    }

    #[test]
    fn leading_space_is_kept() {
        assert_eq!(ok("%20a"), vec![" a"]);
    }

    #[test]
    fn check_segment_refuses_raw_slash() {
        // `open_beneath` relies on this for segments that did not come from
        // `decode_segments`.
        assert!(matches!(
            check_segment("a/b"),
            Err(ResolveError::ForbiddenSegment("encoded slash"))
        ));
    }
}
