"""Commercial cryptography (商用密码): SM3, HMAC-SM3 and SM4 from `cryptography`, SM2 from `gmssl`.

`sm` holds the primitives (with gmssl's known defects worked around), `keys` the key folder
that stands in for the hospital's 密码机 (HSM) in development and the demo.
"""

from .sm import (
    SM2KeyPair,
    hmac_sm3,
    sm2_decrypt,
    sm2_encrypt,
    sm2_generate_keypair,
    sm2_sign,
    sm2_verify,
    sm3_hex,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
)

__all__ = [
    "SM2KeyPair", "hmac_sm3", "sm2_decrypt", "sm2_encrypt", "sm2_generate_keypair", "sm2_sign",
    "sm2_verify", "sm3_hex", "sm4_cbc_decrypt", "sm4_cbc_encrypt",
]
