#!/bin/sh
# "Two hosts on one machine": network namespaces for running ferry VMs as
# if on two hosts of one LAN, with a third machine as the client.
#
#   scripts/netns.sh up       create the topology (tearing down any old one)
#   scripts/netns.sh down     remove it (idempotent)
#   scripts/netns.sh status   show what exists
#
#   ${P}client ── lan0 ─┐
#   ${P}host-a ── lan0 ─┼── bridge "lan" in ${P}ferry-lan
#   ${P}host-b ── lan0 ─┘
#
# In host-a and host-b, lan0 and a tap device (tap0) are ports of a bridge
# br0 that holds the host's address; a VM started inside that namespace with
# `--net tap=tap0` is on the LAN with its own MAC and IP, whichever host it
# runs on. See docs/two-hosts.md.
#
# Everything lives in the namespaces: nothing is created or changed in the
# namespace this script runs in, and the addresses never leave them.
#
# Environment:
#   FERRY_NETNS_PREFIX   prefix of the namespace names (default: none), so
#                        parallel runs can have a topology each
#   FERRY_NETNS_SUBNET   first three octets of the /24 (default 10.77.0)
#
# Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2.
set -eu

P=${FERRY_NETNS_PREFIX-}
NET=${FERRY_NETNS_SUBNET:-10.77.0}
NS_A=${P}host-a
NS_B=${P}host-b
NS_C=${P}client
NS_LAN=${P}ferry-lan
TAP=tap0

HOST_A_IP=$NET.1
HOST_B_IP=$NET.2
GUEST_IP=$NET.10
CLIENT_IP=$NET.100

die() {
    echo "netns.sh: $*" >&2
    exit 1
}

ns_exists() {
    [ -e "/run/netns/$1" ]
}

# Every namespace of the topology, the LAN last (its veths go with it).
all_ns() {
    echo "$NS_A $NS_B $NS_C $NS_LAN"
}

check_tools() {
    command -v ip >/dev/null 2>&1 || die "iproute2 (ip) is not installed"
    [ "$(id -u)" = 0 ] || die "must run as root (creates network namespaces)"
    case $P in
        */* | *" "*) die "FERRY_NETNS_PREFIX must not contain '/' or spaces" ;;
    esac
}

# Kill what still runs inside a namespace (a VM of a crashed run), by pid.
kill_inside() {
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    i=0
    while [ $i -lt 20 ] && [ -n "$(ip netns pids "$1" 2>/dev/null || true)" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
}

down() {
    for ns in $(all_ns); do
        if ns_exists "$ns"; then
            kill_inside "$ns"
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

# nsexec NS CMD...: run CMD inside namespace NS.
nsexec() {
    ns=$1
    shift
    ip netns exec "$ns" "$@"
}

quiet_ipv6() {
    # No IPv6 chatter (DAD, router solicitations) on the test LAN.
    nsexec "$1" sh -c 'for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 \
        /proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -w "$f" ] && echo 1 > "$f"; done; true'
}

up() {
    down
    # A half-built topology is worse than none.
    trap 'rc=$?; [ $rc = 0 ] || { echo "netns.sh: up failed, removing what was made" >&2; down; }' EXIT
    for ns in $(all_ns); do
        ip netns add "$ns" || die "cannot create network namespace $ns"
        quiet_ipv6 "$ns"
        ip -n "$ns" link set lo up
    done

    # The LAN: one bridge, a veth to each machine.
    ip -n "$NS_LAN" link add lan type bridge forward_delay 0 stp_state 0
    ip -n "$NS_LAN" link set lan up
    for pair in "a:$NS_A" "b:$NS_B" "c:$NS_C"; do
        side=${pair%%:*}
        ns=${pair#*:}
        ip -n "$NS_LAN" link add "port-$side" type veth peer name lan0 netns "$ns"
        ip -n "$NS_LAN" link set "port-$side" master lan up
    done

    # The two hosts: br0 = lan0 + tap0, holding the host's address.
    for pair in "$HOST_A_IP:$NS_A" "$HOST_B_IP:$NS_B"; do
        ip_addr=${pair%%:*}
        ns=${pair#*:}
        ip -n "$ns" link add br0 type bridge forward_delay 0 stp_state 0
        ip -n "$ns" link set lan0 master br0
        ip -n "$ns" tuntap add dev "$TAP" mode tap
        ip -n "$ns" link set "$TAP" master br0
        ip -n "$ns" link set lan0 up
        ip -n "$ns" link set "$TAP" up
        ip -n "$ns" addr add "$ip_addr/24" dev br0
        ip -n "$ns" link set br0 up
    done

    # The client: just an address on the LAN.
    ip -n "$NS_C" addr add "$CLIENT_IP/24" dev lan0
    ip -n "$NS_C" link set lan0 up

    trap - EXIT
    echo "netns.sh: up: $NS_A ($HOST_A_IP), $NS_B ($HOST_B_IP), $NS_C ($CLIENT_IP) on $NET.0/24;"
    echo "netns.sh: run a VM with: ip netns exec $NS_A build/ferry run --net tap=$TAP" \
         "--append \"console=ttyS0 quiet ferry.ip=$GUEST_IP/24\""
}

status() {
    any=
    for ns in $(all_ns); do
        if ns_exists "$ns"; then
            any=1
            echo "== $ns"
            ip -n "$ns" -br addr show 2>/dev/null | grep -v '^lo ' || true
            pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
            [ -z "$pids" ] || echo "processes: $pids"
        else
            echo "== $ns: absent"
        fi
    done
    if [ -n "$any" ] && ns_exists "$NS_LAN"; then
        echo "== MACs learned by the LAN bridge:"
        bridge -n "$NS_LAN" fdb show br lan 2>/dev/null | grep -v permanent || true
    fi
    [ -n "$any" ]
}

check_tools
case ${1-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: netns.sh up|down|status (env: FERRY_NETNS_PREFIX, FERRY_NETNS_SUBNET)" ;;
esac
