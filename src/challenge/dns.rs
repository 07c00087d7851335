//! The authoritative DNS server (hickory-server): A for every requested name and below, dns-01 TXT
//! values read straight from the [`ChallengeStore`], NODATA with an SOA for other types, REFUSED
//! outside our zones. Malformed packets are answered (or dropped) by hickory and never stop it.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, HINFO, NS, SOA, TXT};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::ChallengeStore;
use crate::error::{Error, Result};

/// TTL of A and SOA records: short, since the address is only meant for validation.
const TTL: u32 = 60;
/// TTL of TXT records: zero, so no resolver keeps a stale challenge value.
const TXT_TTL: u32 = 0;
/// How long an idle TCP client may hold a connection.
const TCP_IDLE: Duration = Duration::from_secs(5);
/// Our EDNS UDP payload size (the 2020 DNS flag day value): the largest UDP answer we send.
const EDNS_PAYLOAD: u16 = 1232;

/// Answers queries for the zones of the requested names.
#[derive(Debug, Clone)]
pub struct DnsHandler {
    /// Zone apexes: each requested name without `*.`, lowercase, deduplicated.
    zones: Vec<LowerName>,
    /// The A record of every name; None: A queries get no answer (NODATA).
    record: Option<Ipv4Addr>,
    store: ChallengeStore,
}

/// What to answer, before it is encoded.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    pub code: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub soa: Option<Record>,
}

impl DnsHandler {
    /// A handler for `names` (wildcards allowed) answering A queries with `record`, if any.
    pub fn new(names: &[String], record: Option<Ipv4Addr>, store: ChallengeStore) -> Result<Self> {
        let mut zones: Vec<LowerName> = Vec::new();
        // IP identifiers (RFC 8738) have no DNS zone.
        for name in names.iter().filter(|n| !crate::names::is_ip(n)) {
            let apex = name.strip_prefix("*.").unwrap_or(name);
            let parsed = Name::from_ascii(format!("{}.", apex.trim_end_matches('.')))
                .map_err(|e| Error::Usage(format!("{name:?} is not a DNS name: {e}")))?;
            let lower = LowerName::from(parsed.to_lowercase());
            if !zones.contains(&lower) {
                zones.push(lower);
            }
        }
        Ok(DnsHandler {
            zones,
            record,
            store,
        })
    }

    /// The innermost of our zones that contains `name`.
    fn zone_of(&self, name: &LowerName) -> Option<&LowerName> {
        self.zones
            .iter()
            .filter(|z| z.zone_of(name))
            .max_by_key(|z| z.num_labels())
    }

    fn soa(zone: &LowerName) -> Record {
        let apex = Name::from(zone.clone());
        let mname = apex.prepend_label("ns").unwrap_or_else(|_| apex.clone());
        let rname = apex
            .prepend_label("hostmaster")
            .unwrap_or_else(|_| apex.clone());
        // serial 1, refresh 1 h, retry 10 min, expire 1 day, negative TTL 0 (answers change).
        Record::from_rdata(
            apex,
            TTL,
            RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86400, 0)),
        )
    }

    /// The name server of a zone, `ns.<apex>`: in the zone, so its A record is `--record`.
    fn ns(zone: &LowerName) -> Record {
        let apex = Name::from(zone.clone());
        let host = apex.prepend_label("ns").unwrap_or_else(|_| apex.clone());
        Record::from_rdata(apex, TTL, RData::NS(NS(host)))
    }

    /// Decides the answer to a request. Pure: no I/O, so it is unit-tested directly.
    pub fn answer(&self, request: &Request) -> Answer {
        // EDNS versions above 0 are not spoken here (RFC 6891 §6.1.3).
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Answer {
                code: ResponseCode::BADVERS,
                ..Answer::default()
            };
        }
        if request.metadata.op_code != OpCode::Query {
            return Answer {
                code: ResponseCode::NotImp,
                ..Answer::default()
            };
        }
        // One question per message (RFC 9619); anything else is a format error.
        let Ok(info) = request.request_info() else {
            return Answer {
                code: ResponseCode::FormErr,
                ..Answer::default()
            };
        };
        let query = info.query;
        let name = query.name();
        let zone = match self.zone_of(name) {
            Some(zone) if query.query_class() == DNSClass::IN => zone,
            _ => {
                return Answer {
                    code: ResponseCode::Refused,
                    ..Answer::default()
                };
            }
        };
        // The owner name in the case the query used: resolvers that randomise case (0x20, as
        // Let's Encrypt's Unbound does) check it.
        let owner = query.original().name().clone();
        let mut answers = Vec::new();
        match query.query_type() {
            RecordType::A => {
                if let Some(record) = self.record {
                    answers.push(Record::from_rdata(owner, TTL, RData::A(A(record))));
                }
            }
            RecordType::TXT => {
                // The store's names are lowercase; to_ascii, not to_string: Display shows xn--
                // labels as Unicode.
                let key = Name::from(name.clone()).to_ascii();
                for value in self.store.dns_txt(key.trim_end_matches('.')) {
                    answers.push(Record::from_rdata(
                        owner.clone(),
                        TXT_TTL,
                        RData::TXT(TXT::new(vec![value])),
                    ));
                }
            }
            RecordType::SOA if name == zone => answers.push(Self::soa(zone)),
            RecordType::NS if name == zone => answers.push(Self::ns(zone)),
            // RFC 8482: a minimal answer to ANY, never the whole node.
            RecordType::ANY => answers.push(Record::from_rdata(
                owner,
                TTL,
                RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
            )),
            _ => {}
        }
        let soa = answers.is_empty().then(|| Self::soa(zone));
        Answer {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            soa,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let answer = self.answer(request);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = answer.authoritative;
        metadata.recursion_available = false;
        metadata.response_code = answer.code;
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            // hickory cuts a UDP answer (setting TC) at the size this OPT record advertises, so
            // it carries the smaller of the requestor's size, which no UDP answer may exceed
            // (RFC 6891 §6.2.5; below 512 counts as 512), and ours. Advertising less than we
            // could take costs nothing: queries are small.
            edns.set_max_payload(asked.max_payload().clamp(512, EDNS_PAYLOAD));
            // The DO bit is copied back (RFC 3225 §3); the zones are unsigned all the same.
            edns.set_dnssec_ok(asked.flags().dnssec_ok);
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let response = builder.build(metadata, answer.answers.iter(), [], answer.soa.iter(), []);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                debug!(%error, src = %request.src(), "cannot send a DNS response");
                Header {
                    metadata,
                    counts: HeaderCounts::default(),
                }
                .into()
            }
        }
    }
}

/// Serves DNS on an already bound UDP socket and TCP listener until `cancel` fires.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    handler: DnsHandler,
    cancel: CancellationToken,
) -> Result<()> {
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, 32);
    tokio::select! {
        // Only returns early if every listener died.
        done = server.block_until_done() => {
            done.map_err(|e| Error::Local(format!("the DNS server stopped: {e}")))
        }
        () = cancel.cancelled() => server
            .shutdown_gracefully()
            .await
            .map_err(|e| Error::Local(format!("the DNS server did not stop cleanly: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::types::Identifier;
    use crate::challenge::{ChallengeKind, test_publication};
    use hickory_server::net::xfer::Protocol;
    use hickory_server::proto::op::{Message, MessageType, Query};
    use hickory_server::proto::serialize::binary::BinEncodable;

    fn request(name: &str, qtype: RecordType) -> Request {
        request_with(
            vec![Query::query(Name::from_ascii(name).unwrap(), qtype)],
            OpCode::Query,
        )
    }

    fn request_with(queries: Vec<Query>, op: OpCode) -> Request {
        let mut msg = Message::new(7, MessageType::Query, op);
        for q in queries {
            msg.add_query(q);
        }
        let bytes = msg.to_bytes().unwrap();
        Request::from_bytes(bytes, "127.0.0.1:5353".parse().unwrap(), Protocol::Udp).unwrap()
    }

    fn handler(store: &ChallengeStore) -> DnsHandler {
        DnsHandler::new(
            &[
                "example.test".into(),
                "*.example.test".into(),
                "other.test".into(),
            ],
            Some(Ipv4Addr::new(127, 0, 0, 1)),
            store.clone(),
        )
        .unwrap()
    }

    #[test]
    fn a_for_requested_names_and_below_is_authoritative() {
        let h = handler(&ChallengeStore::new());
        for name in [
            "example.test.",
            "EXAMPLE.test.",
            "www.example.test.",
            "a.b.other.test.",
        ] {
            let a = h.answer(&request(name, RecordType::A));
            assert_eq!(a.code, ResponseCode::NoError, "{name}");
            assert!(a.authoritative);
            assert_eq!(a.answers.len(), 1);
            assert_eq!(a.answers[0].data, RData::A(A(Ipv4Addr::new(127, 0, 0, 1))));
            assert!(a.soa.is_none());
        }
    }

    #[test]
    fn txt_serves_every_published_value_for_a_name_and_its_wildcard() {
        let store = ChallengeStore::new();
        let h = handler(&store);
        let empty = h.answer(&request("_acme-challenge.example.test.", RecordType::TXT));
        assert!(empty.answers.is_empty());
        assert!(empty.soa.is_some());
        let _g1 = store.publish(
            test_publication(
                ChallengeKind::Dns01,
                &Identifier::dns("example.test"),
                "t",
                "t.k1",
            )
            .unwrap(),
        );
        let _g2 = store.publish(
            test_publication(
                ChallengeKind::Dns01,
                &Identifier::dns("example.test"),
                "u",
                "u.k2",
            )
            .unwrap(),
        );
        let a = h.answer(&request("_acme-challenge.Example.Test.", RecordType::TXT));
        assert_eq!(a.code, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 2);
        let texts: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains(&crate::acme::jws::dns01_value("t.k1")))
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains(&crate::acme::jws::dns01_value("u.k2")))
        );
        assert_eq!(a.answers[0].ttl, 0);
    }

    #[test]
    fn txt_for_an_internationalised_name_is_found_by_its_a_label() {
        let store = ChallengeStore::new();
        let h = DnsHandler::new(
            &["xn--bcher-kva.example".into()],
            Some(Ipv4Addr::LOCALHOST),
            store.clone(),
        )
        .unwrap();
        let _g = store.publish(
            test_publication(
                ChallengeKind::Dns01,
                &Identifier::dns("xn--bcher-kva.example"),
                "t",
                "t.k",
            )
            .unwrap(),
        );
        let a = h.answer(&request(
            "_acme-challenge.xn--bcher-kva.example.",
            RecordType::TXT,
        ));
        assert_eq!(a.answers.len(), 1);
    }

    #[test]
    fn other_types_get_nodata_with_the_zone_soa() {
        let h = handler(&ChallengeStore::new());
        let a = h.answer(&request("www.example.test.", RecordType::AAAA));
        assert_eq!(a.code, ResponseCode::NoError);
        assert!(a.authoritative);
        assert!(a.answers.is_empty());
        let soa = a.soa.unwrap();
        assert_eq!(soa.name.to_string(), "example.test.");
        assert_eq!(soa.record_type(), RecordType::SOA);
        let soa_q = h.answer(&request("other.test.", RecordType::SOA));
        assert_eq!(soa_q.answers.len(), 1);
    }

    #[test]
    fn names_outside_the_zones_are_refused() {
        let h = handler(&ChallengeStore::new());
        for name in ["test.", "example.org.", "notexample.test.", "."] {
            let a = h.answer(&request(name, RecordType::A));
            assert_eq!(a.code, ResponseCode::Refused, "{name}");
            assert!(!a.authoritative);
            assert!(a.answers.is_empty());
        }
    }

    #[test]
    fn several_questions_and_other_opcodes_are_not_answered() {
        let h = handler(&ChallengeStore::new());
        let q = Query::query(Name::from_ascii("example.test.").unwrap(), RecordType::A);
        let two = h.answer(&request_with(vec![q.clone(), q.clone()], OpCode::Query));
        assert_eq!(two.code, ResponseCode::FormErr);
        let update = h.answer(&request_with(vec![q], OpCode::Update));
        assert_eq!(update.code, ResponseCode::NotImp);
    }

    /// A request carrying EDNS of `version`, with the DO bit set.
    fn request_edns(name: &str, qtype: RecordType, version: u8) -> Request {
        let mut msg = Message::new(9, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let mut edns = Edns::new();
        edns.set_version(version).set_dnssec_ok(true);
        msg.set_edns(edns);
        let bytes = msg.to_bytes().unwrap();
        Request::from_bytes(bytes, "127.0.0.1:5353".parse().unwrap(), Protocol::Udp).unwrap()
    }

    #[test]
    fn owner_names_keep_the_case_of_the_query_0x20() {
        let h = handler(&ChallengeStore::new());
        let a = h.answer(&request("wWw.ExAmPle.TeSt.", RecordType::A));
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].name.to_string(), "wWw.ExAmPle.TeSt.");
    }

    #[test]
    fn the_apex_has_soa_and_an_in_zone_name_server_with_the_record() {
        let h = handler(&ChallengeStore::new());
        let ns = h.answer(&request("example.test.", RecordType::NS));
        assert_eq!(ns.answers.len(), 1);
        let RData::NS(host) = &ns.answers[0].data else {
            panic!("{:?}", ns.answers);
        };
        assert_eq!(host.0.to_string(), "ns.example.test.");
        let a = h.answer(&request("ns.example.test.", RecordType::A));
        assert_eq!(a.answers[0].data, RData::A(A(Ipv4Addr::new(127, 0, 0, 1))));
        // NS below the apex: NODATA with the SOA.
        let below = h.answer(&request("www.example.test.", RecordType::NS));
        assert!(below.answers.is_empty() && below.soa.is_some());
    }

    #[test]
    fn caa_for_every_name_and_parent_in_the_zone_is_nodata_rfc8659() {
        let h = handler(&ChallengeStore::new());
        for name in ["example.test.", "a.example.test.", "b.a.example.test."] {
            let caa = h.answer(&request(name, RecordType::CAA));
            assert_eq!(caa.code, ResponseCode::NoError, "{name}");
            assert!(caa.authoritative && caa.answers.is_empty() && caa.soa.is_some());
        }
    }

    #[test]
    fn any_gets_a_minimal_answer_rfc8482() {
        let h = handler(&ChallengeStore::new());
        let any = h.answer(&request("example.test.", RecordType::ANY));
        assert_eq!(any.answers.len(), 1);
        assert_eq!(any.answers[0].record_type(), RecordType::HINFO);
    }

    #[test]
    fn edns_versions_above_zero_get_badvers_rfc6891_6_1_3() {
        let h = handler(&ChallengeStore::new());
        let bad = h.answer(&request_edns("example.test.", RecordType::A, 1));
        assert_eq!(bad.code, ResponseCode::BADVERS);
        assert!(bad.answers.is_empty());
        let fine = h.answer(&request_edns("example.test.", RecordType::A, 0));
        assert_eq!(fine.code, ResponseCode::NoError);
        assert_eq!(fine.answers.len(), 1);
    }
}
