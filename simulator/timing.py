"""Physical RS485 timing: how long frames and transactions occupy a bus at a given baud rate.

Every character on the wire is 11 bits (start + 8 data + parity/stop + stop), and an RTU
frame is delimited by 3.5 character times of silence. The frame is counted as RTU bytes
(unit + PDU + 2 CRC) whatever the TCP-side framing is, because the gateway speaks RTU on the bus.
"""

BITS_PER_CHAR = 11
SILENCE_CHARS = 3.5
RTU_OVERHEAD_BYTES = 3  # unit address + CRC16


def char_seconds(baud: int) -> float:
    """Time of one character on the wire."""
    return BITS_PER_CHAR / baud


def rtu_frame_seconds(nbytes: int, baud: int) -> float:
    """Wire time of one RTU frame of `nbytes` bytes (unit + PDU + CRC) plus its inter-frame silence."""
    return (nbytes + SILENCE_CHARS) * BITS_PER_CHAR / baud


def transaction_seconds(request_pdu_len: int, reply_pdu_len: int, baud: int) -> float:
    """Wire time of a request and its reply, given the PDU lengths (function code + data)."""
    return (rtu_frame_seconds(request_pdu_len + RTU_OVERHEAD_BYTES, baud)
            + rtu_frame_seconds(reply_pdu_len + RTU_OVERHEAD_BYTES, baud))


def read_transaction_seconds(count: int, baud: int) -> float:
    """Wire time of one FC03/FC04 read of `count` registers (request PDU 5 bytes, reply 2 + 2·count)."""
    return transaction_seconds(5, 2 + 2 * count, baud)
