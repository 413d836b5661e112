//! The DAV client against real servers (Radicale and Xandikos on loopback ports).

use mailshift_dav::testserver::DavServer;

#[test]
fn test_servers_start_and_answer() {
    for server in [DavServer::radicale(), DavServer::xandikos()] {
        let r = server
            .request("OPTIONS", "/", &[], "")
            .unwrap_or_else(|e| panic!("{server:?}: {e}"));
        assert!(r.status < 500, "{server:?}: {r:?}");
    }
}
