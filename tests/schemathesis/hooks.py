"""What the OpenAPI document cannot express, for Schemathesis.

Each filter drops generated requests that are schema-valid but that the
relay refuses by a rule the document states in words only, so that the
positive_data_acceptance check stays meaningful for every other request.
"""

import schemathesis

# The relay refuses these names by rule (protocol/src/policy.rs,
# LOCAL_SUFFIXES): only a home or company network resolves them.
LOCAL_SUFFIXES = (
    "localhost", "local", "internal", "home.arpa", "lan",
    "localdomain", "intranet", "corp", "home",
)


def _host(url):
    rest = url.split("://", 1)[1]
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    return rest.split(":", 1)[0].rstrip(".").lower()


def _refused_by_name(url):
    if not isinstance(url, str) or "://" not in url:
        return False
    host = _host(url)
    if any(host == s or host.endswith("." + s) for s in LOCAL_SUFFIXES):
        return True
    # A label in xn-- form must be valid Punycode, which no pattern checks.
    return any(label.startswith("xn--") for label in host.split("."))


def _unexpressible_query(query):
    if not isinstance(query, dict):
        return False
    # OpenAPI has no way to make one query parameter depend on another (the
    # JSON body says it with dependentRequired, so it is not filtered there):
    # a session lifetime without a session is refused with 400.
    if "session_ttl_secs" in query and "session" not in query:
        return True
    return _refused_by_name(query.get("url"))


def _unexpressible_body(body):
    return isinstance(body, dict) and _refused_by_name(body.get("url"))


@schemathesis.hook
def filter_case(context, case):
    return not (_unexpressible_query(case.query) or _unexpressible_body(case.body))
