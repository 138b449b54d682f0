//! The email's HTML part as a person sees it: rendered by a real browser (Debian's headless
//! `chromium`, installed by `scripts/setup.sh`), whose DOM must load nothing from outside, run no
//! script, and show the severity, the rules and the console link as visible text.

use std::path::Path;
use std::process::Command;

use sgwatch_tests::fixture::scratch;
use sgwatch_tests::samples;

const CHROMIUM: &str = "/usr/bin/chromium";
const CONSOLE_LINK: &str = "https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#SecurityGroup:groupId=sg-0123456789abcdef0";

/// Chromium's flags for a sandbox-less container: no GPU, no first-run work, a profile of its own.
fn chromium(profile: &Path) -> Command {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The text a person sees: the DOM's body without tags, entities decoded, white space folded.
fn visible_text(dom: &str) -> String {
    let body = dom.split_once("<body").map_or(dom, |(_, b)| b);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = html_decode(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn html_decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Every value of attribute `name` in `dom` (as Chromium serialises it: double-quoted).
fn attribute_values<'a>(dom: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!(" {name}=\"");
    dom.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &dom[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn the_email_renders_in_chromium_with_nothing_external_and_says_what_matters() {
    let dir = scratch("browser-dom");
    let page = dir.join("email.html");
    std::fs::write(&page, samples::rdp_email().html).unwrap();

    let out = chromium(&dir.join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("<body"), "no DOM from chromium: {dom}");

    // Nothing that runs, nothing fetched.
    let lower = dom.to_ascii_lowercase();
    for banned in [
        "<script", "<iframe", "<object", "<embed", "<link", "@import", "url(", " on",
    ] {
        let hit = if banned == " on" {
            // Event handler attributes: ` onload=`, ` onclick=`, …
            lower.match_indices(" on").any(|(i, _)| {
                lower[i + 3..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count()
                    > 0
                    && lower[i + 3..]
                        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                        .starts_with("=\"")
            })
        } else {
            lower.contains(banned)
        };
        assert!(!hit, "the rendered email holds {banned:?}: {dom}");
    }
    assert!(
        attribute_values(&dom, "src").is_empty(),
        "the email loads {:?}",
        attribute_values(&dom, "src")
    );
    let links: Vec<String> = attribute_values(&dom, "href")
        .into_iter()
        .map(html_decode)
        .collect();
    assert_eq!(links, [CONSOLE_LINK], "the console link is the only link");

    let text = visible_text(&dom);
    for expected in [
        "Security group sg-0123456789abcdef0 (shared-http) was changed",
        "Severity CRITICAL",
        "Changed by arn:aws:iam::123456789012:user/dept-b-admin from 203.0.113.7",
        "added critical ingress tcp/3389 0.0.0.0/0",
        "Open the security group in the AWS console",
        "Why you got this: tag NotifyOnChange=Yes; recipients from tag OwnerDL",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} is not in the visible text: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_email_screenshots_at_desktop_and_phone_widths() {
    let dir = scratch("browser-shot");
    let page = dir.join("email.html");
    std::fs::write(&page, samples::rdp_email().html).unwrap();
    for width in [1200, 390] {
        let png = dir.join(format!("email-{width}.png"));
        let out = chromium(&dir.join("profile"))
            .arg("--hide-scrollbars")
            .arg(format!("--window-size={width},900"))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&png).expect("a screenshot");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(w, width, "screenshot width");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// How the email lays out at `width` px in Chromium: whether the rules table and the one-line
/// rules show, and the words of 20 characters or fewer that wrap across lines other than after a
/// hyphen (a person reads "critic al" as two words). The email runs no script: the page that frames it measures it.
fn layout(width: u32) -> serde_json::Value {
    let dir = scratch(&format!("browser-layout-{width}"));
    let page = dir.join("frame.html");
    let email = samples::rdp_email().html;
    let srcdoc = email
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let script = r#"
        window.onload = () => {
          const d = document.getElementById('f').contentDocument;
          const shown = (sel) => { const e = d.querySelector(sel); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).display !== 'none'; };
          const broken = [];
          const walker = d.createTreeWalker(d.body, NodeFilter.SHOW_TEXT);
          for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            if (!n.parentElement || n.parentElement.getClientRects().length === 0) continue;
            // A line may end after a hyphen, as in print; within a word it may not.
            const re = /[^\s-]+/g; let m;
            while ((m = re.exec(n.data)) !== null) {
              if (m[0].length > 20) continue;
              const r = d.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
              const tops = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));
              if (tops.size > 1) broken.push(m[0]);
            }
          }
          document.body.setAttribute('data-layout', JSON.stringify({table: shown('.sgw-wide'), lines: shown('.sgw-narrow'), broken}));
        };"#;
    let html = format!(
        "<!DOCTYPE html><html><body style=\"margin:0\"><iframe id=\"f\" style=\"border:0;width:{width}px;height:3000px\" srcdoc=\"{srcdoc}\"></iframe><script>{script}</script></body></html>"
    );
    std::fs::write(&page, html).unwrap();
    let out = chromium(&dir.join("profile"))
        .arg("--virtual-time-budget=5000")
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let measured = attribute_values(&dom, "data-layout");
    let json = html_decode(
        measured
            .first()
            .unwrap_or_else(|| panic!("no layout measured: {dom}")),
    );
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&json).unwrap()
}

#[test]
fn on_a_phone_each_rule_is_one_line_and_no_word_breaks() {
    let phone = layout(390);
    assert_eq!(phone["table"], false, "{phone}");
    assert_eq!(phone["lines"], true, "{phone}");
    assert_eq!(phone["broken"], serde_json::json!([]), "{phone}");
    let desktop = layout(1200);
    assert_eq!(desktop["table"], true, "{desktop}");
    assert_eq!(desktop["lines"], false, "{desktop}");
    assert_eq!(desktop["broken"], serde_json::json!([]), "{desktop}");
}
