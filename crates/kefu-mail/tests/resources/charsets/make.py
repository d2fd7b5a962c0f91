#!/usr/bin/env python3
"""Writes the .eml files of this directory with Python's own `email` library, the way
real senders (scripts, Django, Odoo, mailing tools) produce them: Python writes the
charset label it was given verbatim, so `Header(s, 'eucgb2312_cn')` or
`MIMEText(body, _charset='cp936')` put Python codec aliases on the wire. Each .eml has
a .json beside it with what kefu must read from it (written by hand, checked by
tests/parse_corpus.rs). Run: python3 make.py (output is deterministic)."""

import base64
from email.charset import QP, Charset
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

HERE = Path(__file__).parent


def finish(msg, name, subject, sender=("张三", "eucgb2312_cn")):
    msg["Subject"] = subject
    msg["From"] = f"{Header(sender[0], sender[1]).encode()} <zhang@example.cn>"
    msg["To"] = "support@kefu.example"
    msg["Date"] = "Tue, 02 Jan 2024 10:00:00 +0800"
    msg["Message-ID"] = f"<{name}@example.cn>"
    (HERE / f"{name}.eml").write_bytes(msg.as_bytes().replace(b"\n", b"\r\n"))


# Python's alias for GB2312 in the subject, the sender's name and the body.
m = MIMEText("您好，我的退款申请还没有处理。", _charset="eucgb2312_cn")
finish(m, "eucgb2312_cn", Header("退款申请未处理", "eucgb2312_cn"))

# Microsoft's name for GBK (Python accepts cp936 and ms936), quoted-printable body.
cp936 = Charset("cp936")
cp936.body_encoding = QP
m = MIMEText("订单１２３４还没发货，请查一下。", _charset=cp936)
finish(m, "cp936", Header("查询订单", "ms936"), sender=("李四", "ms936"))

# Python's alias for Big5, with an attachment named in big5_tw.
m = MIMEMultipart(boundary="kefu-sample-boundary")
m.attach(MIMEText("請問何時出貨？", _charset="big5_tw"))
pdf = MIMEApplication(b"%PDF-1.4\n", "pdf")
pdf.add_header("Content-Disposition", "attachment",
               filename=Header("發票.pdf", "big5_tw").encode())
m.attach(pdf)
# The same label in an RFC 2231 parameter, as `add_header(filename=(charset, lang, name))`
# writes it.
xls = MIMEApplication(b"PK\x03\x04", "vnd.ms-excel")
xls.add_header("Content-Disposition", "attachment", filename=("big5_tw", "", "報價單.xls"))
m.attach(xls)
finish(m, "big5_tw", Header("發票問題", "big5_tw"), sender=("陳小姐", "big5_tw"))

# Johab: a real Korean charset that encoding_rs cannot decode; kefu must say so.
m = MIMEText("plain ascii body", _charset="utf-8")
finish(m, "johab", Header("환불 문의", "johab"), sender=("Kim", "utf-8"))

# Declared UTF-8, really GBK: what a misconfigured webmail sends.
m = MIMEText("", _charset="utf-8")
m.set_payload(base64.encodebytes("我的快递三天没有更新了。".encode("gbk")).decode())
# The subject too: an encoded word labelled utf-8 around GBK bytes.
gbk_word = "=?utf-8?b?" + base64.b64encode("快递没更新".encode("gbk")).decode() + "?="
finish(m, "utf8_really_gbk", gbk_word)

# Declared UTF-8, really Big5.
m = MIMEText("", _charset="utf-8")
m.set_payload(base64.encodebytes("請問何時出貨？謝謝。".encode("big5")).decode())
finish(m, "utf8_really_big5", Header("出貨", "utf-8"))

# Base64 broken half-way, in the text and in an attachment: a line of garbage where a
# relay mangled the message.
m = MIMEMultipart(boundary="kefu-sample-boundary")
text = base64.encodebytes(("第一段文字。\n" * 4 + "第二段文字。\n" * 4).encode()).decode()
lines = text.splitlines()
t = MIMEText("", _charset="utf-8")
t.set_payload("\n".join(lines[:1] + ["!!garbled by a relay!!"] + lines[1:]) + "\n")
m.attach(t)
data = bytes(range(256)) * 4
att = MIMEApplication(data, "octet-stream")
att.add_header("Content-Disposition", "attachment", filename="data.bin")
enc = att.get_payload().splitlines()
att.set_payload("\n".join(enc[:5] + ["@@@@"] + enc[5:]) + "\n")
m.attach(att)
finish(m, "broken_base64", Header("附件", "utf-8"))

# Raw 8-bit GBK in the subject, the sender's name and an unlabelled body, as old
# clients on Chinese Windows (Foxmail 6, Outlook Express) sent them: no RFC 2047.
raw = b"\r\n".join([
    b"Subject: " + "发票抬头要改".encode("gbk"),
    b"From: " + "王先生".encode("gbk") + b" <wang@example.cn>",
    b"To: support@kefu.example",
    b"Date: Tue, 02 Jan 2024 10:00:00 +0800",
    b"Message-ID: <eight_bit_gbk@example.cn>",
    b"MIME-Version: 1.0",
    b"Content-Type: text/plain",
    b"Content-Transfer-Encoding: 8bit",
    b"",
    "发票抬头请改成公司名称。".encode("gbk"),
    b"",
])
(HERE / "eight_bit_gbk.eml").write_bytes(raw)
