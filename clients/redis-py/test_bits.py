"""Bit commands through redis-py."""

import pytest
import redis


@pytest.fixture
def rb(r, clients):
    """A client that keeps replies as bytes: bit strings are not UTF-8."""
    return clients(decode_responses=False)


def test_setbit_getbit_bitcount(rb):
    assert rb.setbit("b", 7, 1) == 0
    assert rb.setbit("b", 7, 1) == 1
    assert rb.getbit("b", 7) == 1
    assert rb.getbit("b", 6) == 0
    assert rb.getbit("b", 10_000) == 0
    assert rb.get("b") == b"\x01"
    rb.setbit("b", 0, 1)
    rb.setbit("b", 15, 1)
    assert rb.strlen("b") == 2
    assert rb.bitcount("b") == 3
    assert rb.bitcount("b", 0, 0) == 2
    assert rb.bitcount("b", 1, 1) == 1
    assert rb.bitcount("b", 0, 7, mode="BIT") == 2
    assert rb.bitcount("b", 8, 15, mode="BIT") == 1
    assert rb.bitcount("missing") == 0
    # A set bit far out grows the string with zero bytes.
    rb.setbit("far", 1023, 1)
    assert rb.strlen("far") == 128
    assert rb.bitcount("far") == 1
    with pytest.raises(redis.ResponseError, match="bit is not an integer or out of range"):
        rb.execute_command("SETBIT", "b", 1, 2)
    with pytest.raises(redis.ResponseError, match="bit offset is not an integer or out of range"):
        rb.setbit("b", -1, 1)


def test_bitpos_bitop(rb):
    rb.set("a", b"\xff\xf0\x00")
    assert rb.bitpos("a", 0) == 12
    assert rb.bitpos("a", 1, 2) == -1
    rb.set("zero", b"\x00\x00")
    assert rb.bitpos("zero", 1) == -1
    assert rb.bitpos("zero", 0) == 0
    rb.set("x", b"\x0f")
    rb.set("y", b"\xf1")
    assert rb.bitop("AND", "and", "x", "y") == 1
    assert rb.get("and") == b"\x01"
    assert rb.bitop("OR", "or", "x", "y") == 1
    assert rb.get("or") == b"\xff"
    assert rb.bitop("XOR", "xor", "x", "y") == 1
    assert rb.get("xor") == b"\xfe"
    assert rb.bitop("NOT", "not", "x") == 1
    assert rb.get("not") == b"\xf0"


def test_bitfield(rb):
    bf = rb.bitfield("bf")
    assert bf.set("u8", 0, 255).get("u8", 0).incrby("u8", 0, 10).execute() == [0, 255, 9]
    assert rb.bitfield("bf").overflow("SAT").incrby("u8", 0, 1000).execute() == [255]
    assert rb.bitfield("bf").overflow("FAIL").incrby("u8", 0, 1).execute() == [None]
    assert rb.bitfield("bf").get("u8", 0).execute() == [255]
    # Signed fields and '#' offsets (multiples of the field width).
    res = rb.bitfield("sig").set("i16", "#1", -300).get("i16", "#1").get("u16", 16).execute()
    assert res == [0, -300, 65236]
    assert rb.strlen("sig") == 4
    assert rb.bitfield("sig").overflow("WRAP").incrby("i8", 0, 200).execute() == [-56]
    assert rb.bitfield_ro("sig", "i16", 16) == [-300]
    assert rb.bitfield_ro("sig", "u4", 0, items=[("u4", 4)]) == [12, 8]
    with pytest.raises(redis.ResponseError, match="Invalid bitfield type"):
        rb.bitfield("bf").get("u64", 0).execute()
