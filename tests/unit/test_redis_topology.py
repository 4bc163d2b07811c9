"""Reading CLUSTER NODES and CLUSTER INFO as Redis 7 prints them."""

from __future__ import annotations

from lokifi_storage.domain.redis_topology import parse_cluster_info, parse_cluster_nodes

NODES = """\
ca75ce46 127.0.0.1:7005@17005 slave 726dde7b 0 1795588393552 1 connected
91293ea7 127.0.0.1:7003@17003 slave,fail 222be7ae 1795588390000 1795588392000 2 disconnected
726dde7b 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
222be7ae 10.1.2.3:7001@17001,redis-1.redis master - 0 1795588392000 2 connected 5461-10922
e1e1e1e1 :0@0 master,noaddr - 0 0 3 disconnected
aa11bb22 [::1]:7002@17002 master - 0 0 3 connected 10923-16383
"""

INFO = """\
cluster_state:fail\r
cluster_slots_assigned:16384\r
cluster_slots_ok:10923\r
cluster_slots_pfail:0\r
cluster_slots_fail:5461\r
cluster_known_nodes:6\r
"""


def test_every_node_is_read_with_address_role_and_health() -> None:
    nodes = {n.node_id: n for n in parse_cluster_nodes(NODES)}
    assert len(nodes) == 6
    assert nodes["726dde7b"].address == "127.0.0.1:7000"
    assert nodes["726dde7b"].is_master
    assert "myself" not in nodes["726dde7b"].flags
    assert nodes["ca75ce46"].is_replica
    assert nodes["ca75ce46"].master_id == "726dde7b"
    assert nodes["91293ea7"].failing
    assert not nodes["ca75ce46"].failing


def test_hostnames_after_the_address_and_ipv6_brackets_are_handled() -> None:
    nodes = {n.node_id: n for n in parse_cluster_nodes(NODES)}
    assert (nodes["222be7ae"].host, nodes["222be7ae"].port) == ("10.1.2.3", 7001)
    assert (nodes["aa11bb22"].host, nodes["aa11bb22"].port) == ("::1", 7002)


def test_a_node_without_an_address_cannot_be_connected_to() -> None:
    nodes = {n.node_id: n for n in parse_cluster_nodes(NODES)}
    assert not nodes["e1e1e1e1"].addressable
    assert nodes["726dde7b"].addressable


def test_cluster_info_counters_are_read_despite_crlf_line_ends() -> None:
    info = parse_cluster_info(INFO)
    assert info.state == "fail"
    assert (info.slots_assigned, info.slots_ok, info.slots_fail) == (16384, 10923, 5461)
    assert info.known_nodes == 6


def test_a_node_that_never_met_another_gets_the_address_it_was_asked_on() -> None:
    text = "0dde28ea0000 :7100@17100 myself,master - 0 0 0 connected\n"
    assert parse_cluster_nodes(text)[0].host == ""
    (node,) = parse_cluster_nodes(text, asked="10.0.0.7")
    assert (node.host, node.port) == ("10.0.0.7", 7100)
    assert node.addressable
    # Only `myself` is filled in: another node without an address stays without one.
    other = "1111 :7101@17101 master - 0 0 0 connected\n"
    assert parse_cluster_nodes(other, asked="10.0.0.7")[0].host == ""


def test_a_cluster_formed_over_loopback_is_addressed_where_it_was_reached() -> None:
    # A Pod reaches its host's cluster at the host's address; 127.0.0.1 would be the Pod itself.
    nodes = {n.node_id: n for n in parse_cluster_nodes(NODES, asked="10.244.0.1")}
    assert nodes["726dde7b"].address == "10.244.0.1:7000"
    assert nodes["ca75ce46"].address == "10.244.0.1:7005"
    assert (nodes["aa11bb22"].host, nodes["aa11bb22"].port) == ("10.244.0.1", 7002)
    # A node announcing a real address keeps it, and a node without one stays without.
    assert nodes["222be7ae"].address == "10.1.2.3:7001"
    assert not nodes["e1e1e1e1"].addressable
    # Asked over loopback, loopback addresses are already right.
    local = {n.node_id: n for n in parse_cluster_nodes(NODES, asked="127.0.0.1")}
    assert local["ca75ce46"].address == "127.0.0.1:7005"
    assert local["aa11bb22"].host == "::1"
