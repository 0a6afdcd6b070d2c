//! The redirect contract (DESIGN section 6): the 302's Contact with URI
//! headers the carrier copies into the new INVITE, and the 603's Reason.

use crate::routing::Decision;

/// Characters allowed unescaped in a SIP URI header value (RFC 3261 `hnv-unreserved` + `unreserved`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// base64url without padding.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The 302 Contact for a redirect decision. Context rides inline only while
/// `budget` bytes allow; otherwise it is fetched by decision id.
pub fn contact(
    decision: &Decision,
    decision_id: &str,
    agent_domain: &str,
    budget: usize,
) -> String {
    let agent_id = decision.agent_id.as_deref().unwrap_or_default();
    let target = match &decision.sip_uri {
        Some(uri) => uri.clone(),
        None => format!("sip:{}@{agent_domain}", escape(agent_id)),
    };
    let mut headers = vec![
        format!("X-Inroute-Decision-Id={}", escape(decision_id)),
        format!("X-Anyreach-Agent-Id={}", escape(agent_id)),
        format!(
            "X-Anyreach-Agent-Version={}",
            decision.version.unwrap_or_default()
        ),
    ];
    if decision.skip_pre_conversation_workflow {
        headers.push("X-Anyreach-Skip-Pre-Conversation=true".to_owned());
    }
    if !decision.initial_context.is_empty() || decision.custom_metadata.is_some() {
        let context = serde_json::json!({
            "initial_context": decision.initial_context,
            "custom_metadata": decision.custom_metadata,
        });
        let inline = format!(
            "X-Anyreach-Context={}",
            base64url(context.to_string().as_bytes())
        );
        if target.len() + headers.iter().map(String::len).sum::<usize>() + inline.len() < budget {
            headers.push(inline);
        }
    }
    let separator = if target.contains('?') { '&' } else { '?' };
    format!("<{target}{separator}{}>", headers.join("&"))
}

/// `Reason: SIP;cause=<code>;text="<why>"`.
pub fn reason_header(code: u16, text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .take(200)
        .collect();
    format!("SIP;cause={code};text=\"{clean}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{Action, Reason};

    #[test]
    fn base64url_matches_rfc4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn contact_carries_the_contract_headers() {
        let mut d = Decision {
            action: Action::Redirect,
            reason: Reason::Agent,
            agent_id: Some("agent_sales".into()),
            version: Some(3),
            sip_uri: None,
            sip_status: 302,
            fallback: false,
            detail: None,
            initial_context: "VIP caller".into(),
            custom_metadata: None,
            skip_pre_conversation_workflow: true,
        };
        let c = contact(&d, "dec_1", "agents.example", 1300);
        assert!(c.starts_with("<sip:agent_sales@agents.example?X-Inroute-Decision-Id=dec_1&X-Anyreach-Agent-Id=agent_sales&X-Anyreach-Agent-Version=3&X-Anyreach-Skip-Pre-Conversation=true&X-Anyreach-Context="), "{c}");
        d.initial_context = "x".repeat(2000);
        assert!(
            !contact(&d, "dec_1", "agents.example", 1300).contains("X-Anyreach-Context"),
            "over budget"
        );
        d.sip_uri = Some("sips:sales@pbx.example;transport=tls".into());
        assert!(contact(&d, "dec_1", "agents.example", 1300)
            .starts_with("<sips:sales@pbx.example;transport=tls?X-Inroute"));
        assert_eq!(
            reason_header(603, "no \"agent\""),
            "SIP;cause=603;text=\"no agent\""
        );
    }
}
