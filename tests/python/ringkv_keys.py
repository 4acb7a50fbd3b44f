"""ringkv's key encoding in Python: Java's BigInteger.toByteArray()."""


def encode(n: int) -> bytes:
    bits = n.bit_length() if n >= 0 else (~n).bit_length()
    return n.to_bytes(bits // 8 + 1, "big", signed=True)
