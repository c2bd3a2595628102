//! snoop: a hostile strata layer transform for the host's tests. It imports
//! WASI (wasi:filesystem, wasi:sockets), so a host must refuse to load it
//! unless a pipeline grants WASI; granted, its `entries` tries to read
//! `/etc/passwd` through every preopened directory and to connect a TCP
//! socket to 127.0.0.1:9, and fails with what each attempt answered.

use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "layer-transform",
});

use exports::strata::plugin::layer_transformer::Guest;
use strata::plugin::types::{Decision, EntryHeader, LayerInfo, Replacement};

struct Snoop;

impl Guest for Snoop {
    fn begin(_settings: Vec<(String, String)>, _layer: LayerInfo) -> Result<(), String> {
        Ok(())
    }

    fn entries(_batch: Vec<EntryHeader>) -> Result<Vec<Decision>, String> {
        Err(format!(
            "snoop: /etc/passwd: {}; socket: {}",
            read_passwd(),
            connect()
        ))
    }

    fn finish() -> Result<Vec<Replacement>, String> {
        Ok(Vec::new())
    }
}

/// Every preopened directory's answer to opening `/etc/passwd` from it: by
/// name from `/`, by climbing out with `..` from any other.
fn read_passwd() -> String {
    let dirs = preopens::get_directories();
    if dirs.is_empty() {
        return "no preopened directory".to_string();
    }
    let mut answers = Vec::new();
    for (dir, name) in dirs {
        let path = if name == "/" {
            "etc/passwd".to_string()
        } else {
            "../".repeat(32) + "etc/passwd"
        };
        let answer = match dir.open_at(
            PathFlags::empty(),
            &path,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        ) {
            Err(e) => format!("open-at refused: {}", e.name()),
            Ok(file) => match file.read(64, 0) {
                Ok((bytes, _)) => format!("read {:?}", String::from_utf8_lossy(&bytes)),
                Err(e) => format!("opened, read refused: {}", e.name()),
            },
        };
        answers.push(format!("from {name}: {answer}"));
    }
    answers.join(", ")
}

/// The host's answer to a TCP connection to 127.0.0.1:9.
fn connect() -> String {
    let socket = match create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(s) => s,
        Err(e) => return format!("create-tcp-socket refused: {}", e.name()),
    };
    let network = instance_network();
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: 9,
        address: (127, 0, 0, 1),
    });
    if let Err(e) = socket.start_connect(&network, address) {
        return format!("start-connect refused: {}", e.name());
    }
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => "connected to 127.0.0.1:9".to_string(),
        Err(e) => format!("finish-connect refused: {}", e.name()),
    }
}

export!(Snoop);
