"""Sign-in probe: three SAML service providers, configured the way users configure theirs, that keep
signing in through an Okta app's SSO URL (okta-sim's IdP-initiated sign-in) and say whether each
sign-in was accepted. Test support only: it decides nothing about samlcred, it reports.

The SPs are pysaml2 (with xmlsec1 checking the signatures), each trusting one file of a directory that
mirrors the credential's Secret (as a mounted Secret would be):
  metadata.xml     the file is the IdP metadata (pysaml2 `metadata: local`)
  bundle.pem       trusts every certificate of the bundle (IdP entity ID and SSO URL configured by hand)
  certificate.pem  trusts that one certificate (likewise)
Each SP reads its file again at every attempt (a client is rebuilt when the bytes changed), and checks
the signature, the issuer, the audience, the destination and recipient, and the time conditions.

Commands:
  watch ...   sign in about every --interval seconds until stdin closes or SIGTERM; one JSON line per
              attempt on stdout: {"started": <epoch s>, "took_ms": n, "signer_x5t_s256": "..."|null,
              "results": {"metadata.xml": {"ok": true} | {"ok": false, "reason": "..."}, ...}}
  once ...    one attempt, the same line; exit status 0 when every SP accepted it, 1 otherwise
  metadata-certs --metadata FILE
              the signing certificates pysaml2 takes from a metadata file, per entity:
              {"entities": {"<entityID>": ["<x5t#S256>", ...]}}
A failure reason is an exception class and the first words of its message, never a document: a SAML
response is a credential.
"""

import argparse
import base64
import concurrent.futures
import hashlib
import html.parser
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from xml.sax.saxutils import quoteattr

# pysaml2 logs whole documents at debug level and some at error level; nothing of it may reach a log.
logging.disable(logging.CRITICAL)

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, sigver  # noqa: E402
from saml2.client import Saml2Client  # noqa: E402
from saml2.config import SPConfig  # noqa: E402


def _xmlsec1_version_once():
    """pysaml2 runs `xmlsec1 --version` twice per signature it checks: two of every three processes
    it starts. The version does not change while the probe runs, so ask once."""
    version = sigver.CryptoBackendXmlSec1.version.fget
    cached = {}

    def once(backend):
        if backend.xmlsec not in cached:
            cached[backend.xmlsec] = version(backend)
        return cached[backend.xmlsec]

    sigver.CryptoBackendXmlSec1.version = property(once)


_xmlsec1_version_once()

SP_FILES = ("metadata.xml", "bundle.pem", "certificate.pem")
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"


def reason(exc):
    """What went wrong, without any of the document pysaml2 may have put into the exception."""
    name = type(exc).__name__
    arg = exc.args[0] if exc.args else ""
    if isinstance(arg, dict):
        message = str(arg.get("message", ""))
        failed = [k for k, ok in (arg.get("validators") or {}).items() if not ok]
        if failed:
            message += " (" + ", ".join(failed) + ")"
    else:
        message = str(arg)
    message = message.split("\n", 1)[0].split("<", 1)[0].strip()[:200]
    return f"{name}: {message}" if message else name


def pem_certs(text):
    """The base64 bodies of the PEM certificates in `text`, in order."""
    certs, body = [], None
    for line in text.splitlines():
        line = line.strip()
        if line == PEM_BEGIN:
            body = []
        elif line == PEM_END and body is not None:
            certs.append("".join(body))
            body = None
        elif body is not None:
            body.append(line)
    return certs


def x5t_s256(cert_b64):
    der = base64.b64decode(cert_b64)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def idp_metadata(entity_id, sso_url, certs):
    """IdP metadata for an SP configured by hand: entity ID, SSO URL and the certificates it trusts."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for cert in certs
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID={quoteattr(entity_id)}>'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{keys}"
        f'<md:SingleSignOnService Binding="{BINDING_HTTP_REDIRECT}" Location={quoteattr(sso_url)}/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


class ServiceProvider:
    """One SP, trusting what one file of the Secret directory says."""

    def __init__(self, file_name, args):
        self.file_name = file_name
        self.path = os.path.join(args.dir, file_name)
        self.args = args
        self.seen = None  # the file's bytes the client was built from
        self.client = None

    def _config(self, content):
        args = self.args
        if self.file_name == "metadata.xml":
            metadata = {"local": [self.path]}
        else:
            certs = pem_certs(content.decode("utf-8", "replace"))
            if not certs:
                raise ValueError(f"{self.file_name} holds no certificate")
            metadata = {"inline": [idp_metadata(args.idp_entity_id, args.sso_url, certs)]}
        return {
            "entityid": args.sp_entity_id,
            "xmlsec_binary": args.xmlsec1,
            "metadata": metadata,
            "service": {
                "sp": {
                    "endpoints": {"assertion_consumer_service": [(args.acs_url, BINDING_HTTP_POST)]},
                    "allow_unsolicited": True,  # IdP-initiated: no AuthnRequest to answer
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    "authn_requests_signed": False,
                    "only_use_keys_in_metadata": True,  # never the certificate the response carries
                }
            },
        }

    def validate(self, saml_response_b64):
        """None when the sign-in is accepted, else why not."""
        try:
            with open(self.path, "rb") as f:
                content = f.read()
        except FileNotFoundError:
            return f"{self.file_name} does not exist"
        except OSError as exc:
            return f"reading {self.file_name}: {exc.strerror}"
        try:
            if content != self.seen:
                self.client, self.seen = None, None
                config = SPConfig()
                config.load(self._config(content))
                self.client = Saml2Client(config=config)
                self.seen = content
            response = self.client.parse_authn_request_response(saml_response_b64, BINDING_HTTP_POST)
        except Exception as exc:  # every refusal pysaml2 can raise is a failed sign-in
            return reason(exc)
        if response is None:
            return "pysaml2 refused the response (its destination, issue instant or status)"
        if response.issuer() != self.args.idp_entity_id:
            return f"unexpected issuer {response.issuer()}"
        if not response.assertion or not response.name_id:
            return "pysaml2 accepted no assertion (the response's destination, issue instant or status)"
        return None


class FormReader(html.parser.HTMLParser):
    """The action and the inputs of the sign-in page's form."""

    def __init__(self):
        super().__init__()
        self.action, self.inputs = None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("name"):
            self.inputs[attrs["name"]] = attrs.get("value") or ""


def fetch_sign_in(sso_url, timeout):
    """GETs the SSO URL; returns (SAMLResponse, signer x5t#S256) or raises with a reason."""
    request = urllib.request.Request(sso_url, headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        page = answer.read().decode("utf-8", "replace")
    form = FormReader()
    form.feed(page)
    saml_response = form.inputs.get("SAMLResponse")
    if not saml_response:
        raise ValueError("the sign-in page carries no SAMLResponse")
    signer = None
    xml = base64.b64decode(saml_response).decode("utf-8", "replace")
    start = xml.find("<ds:X509Certificate>")
    if start >= 0:
        end = xml.find("</ds:X509Certificate>", start)
        signer = x5t_s256(xml[start + len("<ds:X509Certificate>") : end])
    return saml_response, signer


def attempt(sps, args, pool):
    started = time.time()
    signer = None
    try:
        saml_response, signer = fetch_sign_in(args.sso_url, args.timeout)
        # As three separate SPs would: each validates at once (most of the time is xmlsec1 processes).
        checks = {sp.file_name: pool.submit(sp.validate, saml_response) for sp in sps}
        results = {name: check.result() for name, check in checks.items()}
    except urllib.error.HTTPError as exc:
        results = {sp.file_name: f"sign-in page answered {exc.code}" for sp in sps}
    except Exception as exc:
        why = "sign-in page: " + reason(exc)
        results = {sp.file_name: why for sp in sps}
    line = {
        "started": round(started, 3),
        "took_ms": round((time.time() - started) * 1000),
        "signer_x5t_s256": signer,
        "results": {k: ({"ok": True} if v is None else {"ok": False, "reason": v}) for k, v in results.items()},
    }
    print(json.dumps(line), flush=True)
    return all(v is None for v in results.values())


def watch(args):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def wait_stdin_closed():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            stop.set()

    threading.Thread(target=wait_stdin_closed, daemon=True).start()
    sps = [ServiceProvider(f, args) for f in SP_FILES]
    with concurrent.futures.ThreadPoolExecutor(len(sps)) as pool:
        while not stop.is_set():
            begun = time.monotonic()
            attempt(sps, args, pool)
            stop.wait(max(0.0, args.interval - (time.monotonic() - begun)))
    return 0


def metadata_certs(args):
    config = SPConfig()
    config.load(
        {
            "entityid": "urn:samlcred:probe",
            "xmlsec_binary": args.xmlsec1,
            "metadata": {"local": [args.metadata]},
            "service": {"sp": {"endpoints": {"assertion_consumer_service": []}}},
        }
    )
    store = config.metadata
    entities = {}
    for entity_id in store.keys():
        certs = store.certs(entity_id, "idpsso", "signing")
        entities[entity_id] = [x5t_s256("".join(c.split())) for _, c in certs if isinstance(c, str)]
    print(json.dumps({"entities": entities}), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("watch", "once"):
        sub = commands.add_parser(name)
        sub.add_argument("--dir", required=True, help="the directory that mirrors the Secret")
        sub.add_argument("--sso-url", required=True, help="the app's SSO URL (IdP-initiated sign-in)")
        sub.add_argument("--idp-entity-id", required=True, help="the IdP's entityID the SPs expect as Issuer")
        sub.add_argument("--sp-entity-id", required=True, help="the SPs' entity ID: the app's audience")
        sub.add_argument("--acs-url", required=True, help="the SPs' ACS URL: the app's ssoAcsUrl")
        sub.add_argument("--interval", type=float, default=0.1, help="seconds between attempt starts")
        sub.add_argument("--timeout", type=float, default=5.0, help="seconds a GET of the SSO URL may take")
    sub = commands.add_parser("metadata-certs")
    sub.add_argument("--metadata", required=True)
    args = parser.parse_args()
    args.xmlsec1 = shutil.which("xmlsec1")
    if not args.xmlsec1:
        print("probe.py: xmlsec1 is not installed (tests/sp/setup.sh installs it)", file=sys.stderr)
        return 2
    if args.command == "watch":
        return watch(args)
    if args.command == "once":
        with concurrent.futures.ThreadPoolExecutor(len(SP_FILES)) as pool:
            return 0 if attempt([ServiceProvider(f, args) for f in SP_FILES], args, pool) else 1
    return metadata_certs(args)


if __name__ == "__main__":
    sys.exit(main())
