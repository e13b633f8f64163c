"""Certificate identities: Fulcio's ``otherName`` username SAN matches like e-mail and URI SANs.

Fulcio issues certificates for "username" identities with the SAN ``otherName`` of type
1.3.6.1.4.1.57264.1.7 holding a DER UTF8String (Fulcio ``docs/oid-info.md``). No genuine one is
available, so these certificates come from a **throwaway CA generated in the test** (no
SCT: the trusted root built here lists no CT log).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import throwaway_pki
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from mloci.trust import Rejected
from mloci.trust.keyless import IdentityRule, certificate_identities
from mloci.trust.legacy_keyless import verify_chain

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
ISSUER = "https://oidc.example.com"


class CA:
    def __init__(self) -> None:
        self.pair = throwaway_pki.ca("throwaway fulcio", NOW)

    def root(self) -> dict[str, Any]:
        return throwaway_pki.fulcio_root(self.pair)

    def leaf(self, *names: x509.GeneralName) -> x509.Certificate:
        return throwaway_pki.issued(
            self.pair,
            NOW + datetime.timedelta(minutes=1),
            ExtendedKeyUsageOID.CODE_SIGNING,
            (x509.SubjectAlternativeName(list(names)), True),
            (
                x509.UnrecognizedExtension(throwaway_pki.OIDC_ISSUER_V2, throwaway_pki.utf8_string(ISSUER)),
                False,
            ),
        )[1]


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


def test_username_identity_matches_exactly_and_by_regexp(ca: CA) -> None:
    leaf = ca.leaf(x509.OtherName(throwaway_pki.USERNAME_SAN, throwaway_pki.utf8_string("alice!example.com")))
    assert certificate_identities(leaf) == ["alice!example.com"]
    assert IdentityRule(identity="alice!example.com", issuer=ISSUER).check(leaf) == (
        "alice!example.com",
        ISSUER,
    )
    by_regexp = IdentityRule(identity_regexp=r"alice!.*\.com", issuer_regexp=r"https://oidc\..*")
    assert by_regexp.check(leaf) == ("alice!example.com", ISSUER)
    # A certificate whose only SAN is the otherName chains like any Fulcio certificate.
    assert verify_chain(leaf, [], ca.root(), NOW + datetime.timedelta(minutes=1))


def test_username_identity_mismatch_says_both_names(ca: CA) -> None:
    leaf = ca.leaf(x509.OtherName(throwaway_pki.USERNAME_SAN, throwaway_pki.utf8_string("alice!example.com")))
    with pytest.raises(Rejected) as caught:
        IdentityRule(identity="bob!example.com", issuer=ISSUER).check(leaf)
    assert caught.value.reason == (
        "certificate identity alice!example.com does not match the required identity bob!example.com"
    )
    with pytest.raises(Rejected, match="does not match the required issuer https://accounts"):
        IdentityRule(identity="alice!example.com", issuer="https://accounts.google.com").check(leaf)


@pytest.mark.parametrize(
    "other",
    [
        x509.OtherName(
            ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), throwaway_pki.utf8_string("alice!example.com")
        ),  # Microsoft UPN
        x509.OtherName(throwaway_pki.USERNAME_SAN, b"\x16\x11alice!example.com"),  # IA5String, not UTF8String
        x509.OtherName(throwaway_pki.USERNAME_SAN, b"\x0c\x03\xff\xfe\xfd"),  # not UTF-8
    ],
    ids=["unknown-type", "ia5string", "not-utf8"],
)
def test_other_othernames_are_never_identities(other: x509.OtherName, ca: CA) -> None:
    leaf = ca.leaf(other)
    assert certificate_identities(leaf) == []
    with pytest.raises(Rejected, match=r"identity \(none"):
        IdentityRule(identity_regexp=".*alice!example.com", issuer=ISSUER).check(leaf)


def test_email_and_uri_identities_still_match(ca: CA) -> None:
    leaf = ca.leaf(
        x509.RFC822Name("carol@example.com"),
        x509.UniformResourceIdentifier("https://github.com/o/r/.github/workflows/x.yml@refs/heads/main"),
    )
    assert IdentityRule(identity="carol@example.com", issuer=ISSUER).check(leaf)[0] == "carol@example.com"
    assert (
        IdentityRule(identity_regexp=r"https://github\.com/o/r/.*", issuer=ISSUER)
        .check(leaf)[0]
        .startswith("https://github.com/o/r/")
    )
