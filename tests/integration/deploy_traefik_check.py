#!/usr/bin/env python3
"""Shape check of deploy/traefik/derp-relay.yml (Traefik is not packaged in Debian, so it cannot
run in the tests): the keys Traefik's dynamic configuration knows, a TCP router on HostSNI with TLS
passthrough to a service sending PROXY protocol v2, and an HTTP router for the same name on port 80.
Usage: deploy_traefik_check.py FILE; exits 0 when the file has that shape, else 1 with the reasons.
"""
import re
import sys

import yaml

# The keys of Traefik's file-provider schema (v2.11/v3) at the levels this file uses; anything
# else is a typo that Traefik would ignore silently.
ROUTER_KEYS = {"entryPoints", "rule", "ruleSyntax", "service", "tls", "priority", "middlewares"}
TCP_TLS_KEYS = {"passthrough", "certResolver", "domains", "options"}
TCP_LB_KEYS = {"servers", "proxyProtocol", "terminationDelay", "serversTransport", "healthCheck"}
HTTP_LB_KEYS = {"servers", "passHostHeader", "sticky", "healthCheck", "responseForwarding",
                "serversTransport"}

errors = []


def need(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


def known(obj, allowed, where):
    if need(isinstance(obj, dict), f"{where}: expected a mapping"):
        for key in obj:
            need(key in allowed, f"{where}: unknown key {key!r}")


def host_port(value, where):
    m = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d+)", str(value))
    need(m is not None and 0 < int(m.group(2)) < 65536, f"{where}: {value!r} is not host:port")


def routers(section, kind, matcher):
    """Yields (name, router, names matched by matcher) for each router of tcp/http."""
    for name, router in (section.get("routers") or {}).items():
        where = f"{kind}.routers.{name}"
        known(router, ROUTER_KEYS, where)
        eps = router.get("entryPoints")
        need(isinstance(eps, list) and eps and all(isinstance(e, str) for e in eps),
             f"{where}.entryPoints: expected a list of entry point names")
        need(router.get("service") in (section.get("services") or {}),
             f"{where}.service: {router.get('service')!r} is not a {kind} service of this file")
        names = re.findall(matcher + r"\(`([^`]+)`\)", str(router.get("rule", "")))
        need(names, f"{where}.rule: {router.get('rule')!r} has no {matcher}(`name`)")
        yield where, router, names


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    known(doc, {"tcp", "http", "tls", "udp"}, "top level")
    tcp, http = doc.get("tcp") or {}, doc.get("http") or {}
    sni_names, host_names = set(), set()
    for where, router, names in routers(tcp, "tcp", "HostSNI"):
        known(router.get("tls"), TCP_TLS_KEYS, f"{where}.tls")
        need((router.get("tls") or {}).get("passthrough") is True,
             f"{where}.tls.passthrough: must be true (the relay keeps its own certificate)")
        lb = ((tcp.get("services") or {}).get(router.get("service")) or {}).get("loadBalancer")
        swhere = f"tcp.services.{router.get('service')}.loadBalancer"
        known(lb, TCP_LB_KEYS, swhere)
        lb = lb or {}
        need((lb.get("proxyProtocol") or {}).get("version") == 2,
             f"{swhere}.proxyProtocol.version: must be 2 (the relay runs --proxy-protocol main)")
        servers = lb.get("servers")
        if need(isinstance(servers, list) and servers, f"{swhere}.servers: expected a list"):
            for i, s in enumerate(servers):
                known(s, {"address", "tls", "weight"}, f"{swhere}.servers[{i}]")
                host_port((s or {}).get("address"), f"{swhere}.servers[{i}].address")
        sni_names.update(names)
    for where, router, names in routers(http, "http", "Host"):
        lb = ((http.get("services") or {}).get(router.get("service")) or {}).get("loadBalancer")
        swhere = f"http.services.{router.get('service')}.loadBalancer"
        known(lb, HTTP_LB_KEYS, swhere)
        for i, s in enumerate((lb or {}).get("servers") or []):
            known(s, {"url", "weight", "preservePath"}, f"{swhere}.servers[{i}]")
            url = str((s or {}).get("url", ""))
            if need(url.startswith("http://"), f"{swhere}.servers[{i}].url: {url!r} is not http://"):
                host_port(url[len("http://"):].rstrip("/"), f"{swhere}.servers[{i}].url")
        host_names.update(names)
    need(sni_names, "tcp: no HostSNI router for the relay")
    need(sni_names == host_names,
         f"the port-80 Host names {sorted(host_names)} differ from the SNI names {sorted(sni_names)}")
    for e in errors:
        print(f"{path}: {e}", file=sys.stderr)
    if not errors:
        print(f"{path}: ok: HostSNI {sorted(sni_names)} passed through with PROXY v2, port 80 by Host")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
