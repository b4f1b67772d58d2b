"""Validates a certificate path as an e-service would, with an independent library
(pyhanko-certvalidator, PyPI): fetching every CRL, delta CRL and OCSP answer the certificates
name, revocation checks hard-fail. Prints `valid`, or `invalid: <reason>`.

usage: validate_path.py ROOT ISSUING LEAF [POLICY]"""

import asyncio
import sys

from asn1crypto import pem, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext


def load(path):
    data = open(path, "rb").read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


async def main():
    root, issuing, leaf = (load(p) for p in sys.argv[1:4])
    ctx = ValidationContext(
        trust_roots=[root],
        other_certs=[issuing],
        allow_fetching=True,
        revocation_mode="hard-fail",
    )
    validator = CertificateValidator(leaf, intermediate_certs=[issuing], validation_context=ctx)
    try:
        await validator.async_validate_usage(set())
    except Exception as e:  # the library's refusals are several exception types
        print(f"invalid: {type(e).__name__}: {e}")
        return
    print("valid")


asyncio.run(main())
