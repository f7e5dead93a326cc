//! Crypto-mining protocol messages: Stratum's JSON-RPC over TCP, one JSON object per line.
//! A miner logs in to its pool, receives jobs and submits shares for as long as it runs, on
//! whatever port the pool chose; these messages name themselves, so that a miner is seen on a
//! network with no history to compare it with. Recognized, in the captured start of a TCP
//! segment that opens a JSON object:
//! - Stratum v1 (Bitcoin and most coins): a `"method"` of `mining.*` (`mining.subscribe`,
//!   `mining.authorize`, `mining.submit`, `mining.notify`, `mining.set_difficulty`...);
//! - Ethereum's stratum proxies: `eth_submitLogin`, `eth_getWork`, `eth_submitWork`,
//!   `eth_submitHashrate`;
//! - CryptoNote (Monero) pools: `login`, `getjob`, `submit`, `job` with a mining field in the
//!   same message (`"job_id"`, `"blob"`, `"nonce"` or the miner's `"agent"`: a JSON-RPC
//!   `login` alone could be anyone's), and `keepalived`.
//!
//! The method also says who sent it ([`Side`]): a station that forwards a miner's traffic
//! sends the pool's messages and receives the miner's, and is no miner. Only the first
//! [`SCAN`] bytes are read; nothing is copied or allocated.

/// Bytes of a segment's payload looked at.
pub const SCAN: usize = 512;

const METHOD: &[u8] = b"\"method\"";
const ETH: [&[u8]; 4] = [
    b"eth_submitLogin",
    b"eth_getWork",
    b"eth_submitWork",
    b"eth_submitHashrate",
];
const CRYPTONOTE: [&[u8]; 4] = [b"login", b"getjob", b"submit", b"job"];
const CRYPTONOTE_FIELDS: [&[u8]; 4] = [b"\"job_id\"", b"\"blob\"", b"\"nonce\"", b"\"agent\""];

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn skip_space(d: &[u8]) -> &[u8] {
    let n = d
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    &d[n..]
}

/// The value of the message's `"method"` member, if it is a short string.
fn method(msg: &[u8]) -> Option<&[u8]> {
    let at = find(msg, METHOD)?;
    let rest = skip_space(&msg[at + METHOD.len()..]);
    let rest = skip_space(rest.strip_prefix(b":")?);
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().take(40).position(|&b| b == b'"')?;
    Some(&rest[..end])
}

/// Who sends a mining message: the miner, or its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Log-ins, shares, hash rates, requests for work.
    Miner,
    /// Jobs and difficulty: `mining.notify`, `mining.set_difficulty`, CryptoNote's `job`.
    Pool,
}

/// Methods a pool sends.
const POOL_METHODS: [&[u8]; 4] = [
    b"mining.notify",
    b"mining.set_difficulty",
    b"mining.set_extranonce",
    b"job",
];

/// The crypto-mining protocol message that the captured start of a TCP payload is, if any,
/// by who sends it.
pub fn message(payload: &[u8]) -> Option<Side> {
    let msg = &payload[..payload.len().min(SCAN)];
    if skip_space(msg).first() != Some(&b'{') {
        return None;
    }
    let m = method(msg)?;
    let mining = m.starts_with(b"mining.")
        || ETH.contains(&m)
        || m == b"keepalived"
        || (CRYPTONOTE.contains(&m) && CRYPTONOTE_FIELDS.iter().any(|f| find(msg, f).is_some()));
    mining.then(|| {
        if POOL_METHODS.contains(&m) {
            Side::Pool
        } else {
            Side::Miner
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratum_v1_ethereum_and_cryptonote_messages() {
        for m in [
            &b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cgminer/4.10\"]}\n"[..],
            b"{\"params\": [\"bc1q\", \"x\"], \"id\": 2, \"method\": \"mining.authorize\"}\n",
            b"{\"worker\": \"\", \"jsonrpc\": \"2.0\", \"params\": [\"0x5b41/tester.worker1\", \"x\"], \"id\": 2, \"method\": \"eth_submitLogin\"}\n",
            b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"44AFF\",\"pass\":\"x\",\"agent\":\"xmr-stak-cpu/1.3.0\"}}\n",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0606\",\"job_id\":\"7\",\"target\":\"b88d0600\"}}\n",
            b"{\"method\":\"submit\",\"params\":{\"id\":\"1\",\"job_id\":\"7\",\"nonce\":\"0100a0b1\",\"result\":\"ab\"},\"id\":3}\n",
            b"  {\"method\" : \"keepalived\", \"id\": 4}",
        ] {
            assert!(message(m).is_some(), "{}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn the_sender_is_told_by_the_method() {
        let side = |m: &[u8]| message(m).unwrap();
        assert_eq!(
            side(b"{\"id\":4,\"method\":\"mining.submit\",\"params\":[]}"),
            Side::Miner
        );
        assert_eq!(
            side(b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[]}"),
            Side::Pool
        );
        assert_eq!(
            side(b"{\"method\":\"job\",\"params\":{\"blob\":\"07\"}}"),
            Side::Pool
        );
        assert_eq!(
            side(b"{\"method\":\"eth_submitWork\",\"id\":5}"),
            Side::Miner
        );
    }

    #[test]
    fn other_json_and_text_are_not() {
        for m in [
            &b"{\"method\":\"login\",\"params\":{\"user\":\"lock\",\"password\":\"x\"}}"[..],
            b"{\"method\":\"getStatus\",\"id\":1}",
            b"{\"id\":1,\"result\":{\"status\":\"OK\"}}",
            b"POST /rpc HTTP/1.1\r\n\r\n{\"method\":\"mining.submit\"}",
            b"{\"method\":\"mining.subscribe",
            b"{\"method\": 7}",
            b"",
            b"{",
        ] {
            assert!(message(m).is_none(), "{}", String::from_utf8_lossy(m));
        }
    }
}
