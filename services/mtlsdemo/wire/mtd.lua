-- MTD/1: a Wireshark dissector for mtlsdemo's mutual TLS-style handshake and records.
--
-- Shipped with the mtlsdemo package (`mtlsdemo wireshark --print-path`, `--install`).
-- Every field is named as docs/protocol.md names it; certificates go to Wireshark's own
-- X.509 dissector, stapled statuses to its OCSP dissector. With a key log (the file a
-- sidecar writes with --keylog, set as the preference mtd.keylog_file, or
-- `-o mtd.keylog_file:FILE` in tshark) it derives each session's record keys and nonces
-- exactly as the sidecars do (HKDF-Expand-Label with the "mtd1 " prefix, nonce = iv XOR
-- sequence number), opens every protected record, checks its AEAD tag and hands the
-- plaintext (the app's own bytes: HTTP/2 for gRPC) to Wireshark's HTTP/2 dissector.
--
--   tshark -X lua_script:mtd.lua -o mtd.keylog_file:keys.log -r capture.pcapng -V
--
-- Decryption needs lua-luaossl (Debian: lua-luaossl), loaded inside Wireshark's Lua;
-- without it everything in clear is still dissected and protected records say why they
-- stay opaque. Like TLS, a session can be decrypted only when its handshake is in the
-- capture (the key log is indexed by the ClientHello's random).

local mtd = Proto("mtd", "MTD/1 (mtlsdemo mutual handshake and records)")

-- tables: generated from the handshake core (mtlsdemo.wire.tables); do not edit
local RECORD_TYPES = {
  [21] = "alert",
  [22] = "handshake",
  [23] = "application_data",
  [24] = "key_update",
}
local MESSAGE_TYPES = {
  [1] = "ClientHello",
  [2] = "ServerHello",
  [4] = "NewSessionTicket",
  [11] = "Certificate",
  [12] = "ServerKeyShare",
  [13] = "CertificateRequest",
  [15] = "CertificateVerify",
  [16] = "ClientKeyExchange",
  [20] = "Finished",
}
local VERSIONS = {
  [258] = "MTD/1.2",
  [257] = "MTD/1.1",
  [256] = "MTD/1.0",
}
local SUITES = {
  [257] = "ECDHE-X25519-AES-256-GCM",
  [258] = "ECDHE-X25519-CHACHA20-POLY1305",
  [259] = "ECDHE-X25519-AES-128-GCM",
  [513] = "RSA-OAEP-AES-256-GCM",
  [514] = "RSA-OAEP-CHACHA20-POLY1305",
  [515] = "RSA-OAEP-AES-128-GCM",
  [769] = "X25519MLKEM768-AES-256-GCM",
  [770] = "X25519MLKEM768-CHACHA20-POLY1305",
}
local SUITE_KX = {
  [257] = "x25519",
  [258] = "x25519",
  [259] = "x25519",
  [513] = "rsa",
  [514] = "rsa",
  [515] = "rsa",
  [769] = "hybrid",
  [770] = "hybrid",
}
local SUITE_AEAD = {
  [257] = "AES-256-GCM",
  [258] = "CHACHA20-POLY1305",
  [259] = "AES-128-GCM",
  [513] = "AES-256-GCM",
  [514] = "CHACHA20-POLY1305",
  [515] = "AES-128-GCM",
  [769] = "AES-256-GCM",
  [770] = "CHACHA20-POLY1305",
}
local SUITE_KEY_LEN = {
  [257] = 32,
  [258] = 32,
  [259] = 16,
  [513] = 32,
  [514] = 32,
  [515] = 16,
  [769] = 32,
  [770] = 32,
}
local GROUPS = {
  [29] = "x25519",
  [4588] = "X25519MLKEM768",
}
local SCHEMES = {
  [1027] = "ECDSA_SECP256R1_SHA256",
  [2052] = "RSA_PSS_RSAE_SHA256",
  [2055] = "ED25519",
  [2308] = "MLDSA44",
  [2309] = "MLDSA65",
}
local ALERTS = {
  [0] = "close_notify",
  [10] = "unexpected_message",
  [20] = "decrypt_error",
  [22] = "record_overflow",
  [40] = "no_common_suite",
  [42] = "bad_certificate",
  [44] = "certificate_revoked",
  [45] = "certificate_expired",
  [46] = "certificate_not_yet_valid",
  [47] = "illegal_parameter",
  [48] = "unknown_ca",
  [49] = "identity_mismatch",
  [50] = "decode_error",
  [51] = "bad_signature",
  [52] = "bad_finished",
  [70] = "unsupported_version",
  [75] = "handshake_timeout",
  [80] = "internal_error",
  [81] = "sequence_exhausted",
  [82] = "overloaded",
  [83] = "status_missing",
  [84] = "status_stale",
  [113] = "status_invalid",
  [116] = "certificate_required",
}
local REFUSALS = {
  [0] = "none",
  [1] = "ticket_unknown_key",
  [2] = "ticket_malformed",
  [3] = "ticket_expired",
  [4] = "ticket_replayed",
  [5] = "ticket_peer_not_allowed",
  [6] = "ticket_certificate_expired",
  [7] = "ticket_status_stale",
  [8] = "ticket_trust_changed",
  [9] = "ticket_suite_unavailable",
  [10] = "ticket_credentials_changed",
  [11] = "ticket_peer_revoked",
  [12] = "ticket_identity_changed",
}
local X25519_LEN, MLKEM768_EK_LEN, MLKEM768_CT_LEN = 32, 1184, 1088
local RANDOM_LEN, BINDER_LEN = 32, 32
-- /tables

local HEADER_LEN, TAG_LEN, MAX_RECORD = 5, 16, 16384 + 256
local RECORD_VERSION = 0x0100
local HS_ALERT, HS_HANDSHAKE, HS_APP, HS_KEY_UPDATE = 21, 22, 23, 24
local MSG_CLIENT_HELLO, MSG_SERVER_HELLO, MSG_FINISHED = 1, 2, 20
local H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
local STEP = {
  [1] = "step 1: hello", [2] = "step 1: hello", [4] = "step 4: finished (resumption)",
  [11] = "step 2: certificate verification", [13] = "step 2: certificate verification",
  [15] = "step 2: certificate verification", [12] = "step 3: key exchange",
  [16] = "step 3: key exchange", [20] = "step 4: finished",
}

-- ------------------------------------------------------------------ preferences
mtd.prefs.keylog_file = Pref.string("Key log file", "",
  "The key log a sidecar writes with --keylog (MTD_CLIENT/SERVER_TRAFFIC_SECRET_0 lines)")
mtd.prefs.ports = Pref.range("TCP ports", "50051",
  "Ports decoded as MTD/1 even mid-session (sessions whose ClientHello is captured are found on any port)", 65535)

-- ------------------------------------------------------------------ fields
local F = {
  record = ProtoField.bytes("mtd.record", "Record", base.NONE),
  rtype = ProtoField.uint8("mtd.record.type", "Content type", base.DEC, RECORD_TYPES),
  rversion = ProtoField.uint16("mtd.record.version", "Record version", base.HEX),
  rlength = ProtoField.uint16("mtd.record.length", "Length", base.DEC),
  hs = ProtoField.bytes("mtd.handshake", "Handshake message", base.NONE),
  hstype = ProtoField.uint8("mtd.handshake.type", "Handshake type", base.DEC, MESSAGE_TYPES),
  hslength = ProtoField.uint24("mtd.handshake.length", "Length", base.DEC),
  versions_length = ProtoField.uint8("mtd.client_hello.versions_length", "Versions length", base.DEC),
  version = ProtoField.uint16("mtd.version", "Version", base.HEX, VERSIONS),
  random = ProtoField.bytes("mtd.random", "Random", base.NONE),
  suites_length = ProtoField.uint8("mtd.client_hello.suites_length", "Suites length", base.DEC),
  suite = ProtoField.uint16("mtd.suite", "Suite", base.HEX, SUITES),
  ticket_length = ProtoField.uint16("mtd.ticket_length", "Ticket length", base.DEC),
  ticket = ProtoField.bytes("mtd.ticket", "Ticket (opaque: sealed with the server's ticket key)", base.NONE),
  share_length = ProtoField.uint8("mtd.resume.x25519_share_length", "X25519 share length", base.DEC),
  share = ProtoField.bytes("mtd.resume.x25519_share", "X25519 share (resumption)", base.NONE),
  binder = ProtoField.bytes("mtd.resume.binder", "Binder", base.NONE),
  resumed = ProtoField.uint8("mtd.server_hello.resumed", "Resumed", base.DEC, { [0] = "no: full handshake", [1] = "yes: the ticket was accepted" }),
  refusal = ProtoField.uint8("mtd.server_hello.refusal", "Ticket refusal", base.DEC, REFUSALS),
  lifetime = ProtoField.uint32("mtd.new_session_ticket.lifetime", "Lifetime (s)", base.DEC),
  max_uses = ProtoField.uint32("mtd.new_session_ticket.max_uses", "Max uses", base.DEC),
  cert_count = ProtoField.uint8("mtd.certificate.count", "Certificates", base.DEC),
  cert_length = ProtoField.uint24("mtd.certificate.length", "Certificate length", base.DEC),
  cert = ProtoField.bytes("mtd.certificate", "Certificate (DER)", base.NONE),
  status_length = ProtoField.uint24("mtd.certificate.status_length", "Stapled status length", base.DEC),
  status = ProtoField.bytes("mtd.certificate.status", "Stapled status (DER OCSP response)", base.NONE),
  group = ProtoField.uint16("mtd.server_key_share.group", "Group", base.HEX, GROUPS),
  key_length = ProtoField.uint16("mtd.server_key_share.key_length", "Key share length", base.DEC),
  mlkem_ek = ProtoField.bytes("mtd.server_key_share.mlkem768_encapsulation_key", "ML-KEM-768 encapsulation key", base.NONE),
  x25519 = ProtoField.bytes("mtd.x25519_public_key", "X25519 public key", base.NONE),
  schemes_length = ProtoField.uint8("mtd.certificate_request.schemes_length", "Signature schemes length", base.DEC),
  scheme = ProtoField.uint16("mtd.signature_scheme", "Signature scheme", base.HEX, SCHEMES),
  sig_length = ProtoField.uint16("mtd.certificate_verify.signature_length", "Signature length", base.DEC),
  signature = ProtoField.bytes("mtd.certificate_verify.signature", "Signature", base.NONE),
  cke_length = ProtoField.uint16("mtd.client_key_exchange.length", "Key exchange data length", base.DEC),
  mlkem_ct = ProtoField.bytes("mtd.client_key_exchange.mlkem768_ciphertext", "ML-KEM-768 ciphertext", base.NONE),
  rsa_ct = ProtoField.bytes("mtd.client_key_exchange.rsa_oaep_ciphertext", "RSA-OAEP encrypted pre-master secret", base.NONE),
  verify_data = ProtoField.bytes("mtd.finished.verify_data", "verify_data (HMAC-SHA256)", base.NONE),
  alert_level = ProtoField.uint8("mtd.alert.level", "Alert level", base.DEC, { [1] = "warning", [2] = "fatal" }),
  alert = ProtoField.uint8("mtd.alert.description", "Alert", base.DEC, ALERTS),
  request_update = ProtoField.uint8("mtd.key_update.request_update", "Request update", base.DEC),
  ciphertext = ProtoField.bytes("mtd.ciphertext", "Ciphertext", base.NONE),
  tag = ProtoField.bytes("mtd.tag", "AEAD tag", base.NONE),
  seq = ProtoField.uint64("mtd.seq", "Sequence number (never sent: counted)", base.DEC),
  generation = ProtoField.uint32("mtd.key_generation", "Key generation", base.DEC),
  nonce = ProtoField.string("mtd.nonce", "Nonce (iv XOR sequence number)"),
  decrypted = ProtoField.bytes("mtd.decrypted", "Decrypted", base.NONE),
  tag_ok = ProtoField.bool("mtd.tag_ok", "AEAD tag verified"),
  opaque = ProtoField.string("mtd.opaque", "Not decrypted"),
  claim = ProtoField.string("mtd.alert.claim", "Authenticity"),
  step = ProtoField.string("mtd.step", "Step"),
}
local flist = {}
for _, v in pairs(F) do flist[#flist + 1] = v end
mtd.fields = flist

local E = {
  malformed = ProtoExpert.new("mtd.malformed", "Malformed MTD/1", expert.group.MALFORMED, expert.severity.ERROR),
  tag_failed = ProtoExpert.new("mtd.tag_failed", "AEAD tag check failed: the record was changed on the path, or is not under these keys (decrypt_error)", expert.group.DECRYPTION, expert.severity.ERROR),
  claim = ProtoExpert.new("mtd.alert.unverified", "Alert in clear before keys: the sender's claim, unverified", expert.group.SECURITY, expert.severity.WARN),
  opaque = ProtoExpert.new("mtd.not_decrypted", "Protected record not decrypted", expert.group.DECRYPTION, expert.severity.NOTE),
}
mtd.experts = { E.malformed, E.tag_failed, E.claim, E.opaque }

-- ------------------------------------------------------------------ crypto (luaossl)
local ok_cipher, cipher = pcall(require, "openssl.cipher")
local ok_hmac, hmac = pcall(require, "openssl.hmac")
local CRYPTO_ERROR = nil
if not (ok_cipher and ok_hmac) then
  CRYPTO_ERROR = "lua-luaossl is not loadable in Wireshark's Lua (" .. tostring(ok_cipher and hmac or cipher) ..
    "): install lua-luaossl (Debian) to decrypt; everything in clear is still dissected"
end
local band, bxor, bor, rshift, lshift = bit32.band, bit32.bxor, bit32.bor, bit32.rshift, bit32.lshift

local function hmac256(key, data) return hmac.new(key, "sha256"):final(data) end

local function expand_label(secret, label, context, length)
  local full = "mtd1 " .. label
  local info = string.char(math.floor(length / 256), length % 256, #full) .. full .. string.char(#context) .. context
  return hmac256(secret, info .. "\1"):sub(1, length)
end

local function words(s, i)
  local b = { s:byte(i, i + 15) }
  for k = #b + 1, 16 do b[k] = 0 end
  return (b[1] * 16777216 + b[2] * 65536 + b[3] * 256 + b[4]),
         (b[5] * 16777216 + b[6] * 65536 + b[7] * 256 + b[8]),
         (b[9] * 16777216 + b[10] * 65536 + b[11] * 256 + b[12]),
         (b[13] * 16777216 + b[14] * 65536 + b[15] * 256 + b[16])
end

local function word_bytes(w)
  return string.char(band(rshift(w, 24), 255), band(rshift(w, 16), 255), band(rshift(w, 8), 255), band(w, 255))
end

-- GF(2^128) multiplication of GCM (NIST SP 800-38D, algorithm 1)
local function gmul(x1, x2, x3, x4, h1, h2, h3, h4)
  local z1, z2, z3, z4 = 0, 0, 0, 0
  local v1, v2, v3, v4 = h1, h2, h3, h4
  local xs = { x1, x2, x3, x4 }
  for w = 1, 4 do
    local x = xs[w]
    for bit = 31, 0, -1 do
      if band(rshift(x, bit), 1) == 1 then
        z1, z2, z3, z4 = bxor(z1, v1), bxor(z2, v2), bxor(z3, v3), bxor(z4, v4)
      end
      local lsb = band(v4, 1)
      v4 = bor(rshift(v4, 1), lshift(band(v3, 1), 31))
      v3 = bor(rshift(v3, 1), lshift(band(v2, 1), 31))
      v2 = bor(rshift(v2, 1), lshift(band(v1, 1), 31))
      v1 = rshift(v1, 1)
      if lsb == 1 then v1 = bxor(v1, 0xE1000000) end
    end
  end
  return z1, z2, z3, z4
end

local function ghash(H, aad, ct)
  local h1, h2, h3, h4 = words(H, 1)
  local y1, y2, y3, y4 = 0, 0, 0, 0
  for _, data in ipairs({ aad, ct }) do
    for i = 1, #data, 16 do
      local a, b, c, d = words(data, i)
      y1, y2, y3, y4 = gmul(bxor(y1, a), bxor(y2, b), bxor(y3, c), bxor(y4, d), h1, h2, h3, h4)
    end
  end
  y1, y2, y3, y4 = gmul(y1, bxor(y2, #aad * 8), y3, bxor(y4, #ct * 8), h1, h2, h3, h4)
  return word_bytes(y1) .. word_bytes(y2) .. word_bytes(y3) .. word_bytes(y4)
end

local function ecb(bits, key, block)
  local c = cipher.new("aes-" .. bits .. "-ecb")
  c:encrypt(key, nil, false)
  return c:update(block) .. (c:final() or "")
end

local function xor_str(a, b)
  local out = {}
  for i = 1, #a do out[i] = string.char(bxor(a:byte(i), b:byte(i))) end
  return table.concat(out)
end

-- AEAD open: plaintext and whether the tag verified (nil: the tag is not checked here)
local function aead_open(aead, key, nonce, aad, sealed)
  local ct, tag = sealed:sub(1, #sealed - TAG_LEN), sealed:sub(#sealed - TAG_LEN + 1)
  if aead == "CHACHA20-POLY1305" then
    local c = cipher.new("chacha20")
    c:decrypt(key, "\1\0\0\0" .. nonce)
    return c:update(ct) .. (c:final() or ""), nil
  end
  local bits = #key * 8
  local c = cipher.new("aes-" .. bits .. "-ctr")
  c:decrypt(key, nonce .. "\0\0\0\2")
  local plain = c:update(ct) .. (c:final() or "")
  local H = ecb(bits, key, string.rep("\0", 16))
  local expect = xor_str(ecb(bits, key, nonce .. "\0\0\0\1"), ghash(H, aad, ct))
  return plain, expect == tag
end

local function nonce_of(iv, seq)
  local out, s = {}, seq
  for i = 12, 1, -1 do
    local b = iv:byte(i)
    if i > 4 then
      b = bxor(b, s % 256)
      s = math.floor(s / 256)
    end
    out[i] = string.char(b)
  end
  return table.concat(out)
end

-- ------------------------------------------------------------------ the key log
local keylog = { path = nil, secrets = {} }

local function from_hex(h)
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

local function to_hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function read_keylog()
  local path = mtd.prefs.keylog_file
  keylog.path, keylog.secrets = path, {}
  if path == nil or path == "" then return end
  local f = io.open(path, "r")
  if f == nil then return end
  for line in f:lines() do
    local label, cr, secret = line:match("^(MTD_[A-Z_]+_TRAFFIC_SECRET_0) (%x+) (%x+)%s*$")
    if label then
      local entry = keylog.secrets[cr:lower()] or {}
      entry[label:find("CLIENT") and "client" or "server"] = from_hex(secret)
      keylog.secrets[cr:lower()] = entry
    end
  end
  f:close()
end

local function secrets_for(client_random)
  local hex = to_hex(client_random)
  if keylog.path ~= mtd.prefs.keylog_file or keylog.secrets[hex] == nil then
    read_keylog() -- a growing file: read again for a random not seen yet
  end
  return keylog.secrets[hex]
end

function mtd.prefs_changed()
  keylog.path = nil
end

-- ------------------------------------------------------------------ per-session state
local f_stream = Field.new("tcp.stream")
local sessions = {} -- tcp.stream -> session
local cache = {}    -- "frame:record index" -> what the first pass found in that record

function mtd.init()
  sessions, cache, keylog.path = {}, {}, nil
end

local function new_direction()
  return { protected = false, seq = 0, generation = 0, secret = nil, hs = "", app = "", h2 = nil }
end

local function session_of(pinfo)
  local stream = f_stream()
  local id = stream and stream.value or -1
  local s = sessions[id]
  if s == nil then
    s = { client_addr = nil, client_port = nil, dirs = { client = new_direction(), server = new_direction() } }
    sessions[id] = s
  end
  return s
end

local function sender_of(s, pinfo)
  if s.client_port then
    return (pinfo.src_port == s.client_port and tostring(pinfo.src) == s.client_addr) and "client" or "server"
  end
  -- no ClientHello seen (a session that began before the capture): the server is on
  -- the well-known port
  return (pinfo.dst_port < pinfo.src_port) and "client" or "server"
end

-- ------------------------------------------------------------------ first pass: state
local function take_messages(dir, payload)
  -- handshake messages may span records: those completed by this record, each either
  -- inside it (offset) or reassembled (bytes)
  local pending = dir.hs
  local data = pending .. payload
  local out, pos = {}, 1
  while #data - pos + 1 >= 4 do
    local len = data:byte(pos + 1) * 65536 + data:byte(pos + 2) * 256 + data:byte(pos + 3)
    if #data - pos + 1 < 4 + len then break end
    if pos > #pending then
      out[#out + 1] = { offset = pos - #pending - 1, length = 4 + len }
    else
      out[#out + 1] = { bytes = data:sub(pos, pos + 3 + len), length = 4 + len }
    end
    pos = pos + 4 + len
  end
  dir.hs = data:sub(pos)
  return out
end

local function learn(s, sender, msg_bytes)
  local mt = msg_bytes:byte(1)
  if mt == MSG_CLIENT_HELLO and #msg_bytes >= 5 then
    local vlen = msg_bytes:byte(5)
    s.client_random = msg_bytes:sub(6 + vlen, 5 + vlen + RANDOM_LEN)
  elseif mt == MSG_SERVER_HELLO and #msg_bytes >= 4 + 2 + RANDOM_LEN + 2 then
    s.version = msg_bytes:byte(5) * 256 + msg_bytes:byte(6)
    s.suite = msg_bytes:byte(7 + RANDOM_LEN) * 256 + msg_bytes:byte(8 + RANDOM_LEN)
  elseif mt == MSG_FINISHED then
    s.dirs[sender].protect_next = true -- a side seals everything it sends after its Finished
  end
end

local function install(dir, secret, key_len)
  dir.secret = secret
  dir.key = expand_label(secret, "key", "", key_len)
  dir.iv = expand_label(secret, "iv", "", 12)
  dir.seq = 0
end

local function h2_units(dir, sender, plain)
  -- the app's bytes, cut into HTTP/2 frames (a frame may span records): each complete
  -- unit goes to Wireshark's HTTP/2 dissector whole
  if dir.h2 == false then return nil end
  dir.app = dir.app .. plain
  if dir.h2 == nil then
    if sender == "client" then
      if #dir.app < #H2_PREFACE then
        if H2_PREFACE:sub(1, #dir.app) ~= dir.app then dir.h2 = false; return nil end
        return {}
      end
      dir.h2 = dir.app:sub(1, #H2_PREFACE) == H2_PREFACE
    else
      dir.h2 = #dir.app >= 9 and dir.app:byte(4) == 4 -- a server's first frame is SETTINGS
    end
    if not dir.h2 then return nil end
  end
  local units, pos = {}, 1
  if sender == "client" and not dir.preface_done then
    units[1] = dir.app:sub(1, #H2_PREFACE)
    pos = #H2_PREFACE + 1
    dir.preface_done = true
  end
  while #dir.app - pos + 1 >= 9 do
    local len = dir.app:byte(pos) * 65536 + dir.app:byte(pos + 1) * 256 + dir.app:byte(pos + 2)
    if #dir.app - pos + 1 < 9 + len then break end
    units[#units + 1] = dir.app:sub(pos, pos + 8 + len)
    pos = pos + 9 + len
  end
  dir.app = dir.app:sub(pos)
  return units
end

local function open_record(s, sender, dir, rtype, header, sealed)
  local r = { protected = true }
  if s.client_random == nil then
    r.why = "no handshake for this session in the capture (it began before): its client random, and so its keys, are unknown (as with TLS)"
    return r
  end
  if CRYPTO_ERROR then r.why = CRYPTO_ERROR; return r end
  if dir.secret == nil then
    local secrets = secrets_for(s.client_random)
    if secrets == nil or secrets[sender] == nil then
      r.why = (mtd.prefs.keylog_file == "" and "no key log set (preference mtd.keylog_file)")
        or ("no " .. sender .. " traffic secret for client random " .. to_hex(s.client_random):sub(1, 16) .. "… in " .. mtd.prefs.keylog_file)
      return r
    end
    if s.suite == nil or SUITE_AEAD[s.suite] == nil then
      r.why = "the suite is unknown (no ServerHello seen)"
      return r
    end
    install(dir, secrets[sender], SUITE_KEY_LEN[s.suite])
  end
  r.seq, r.generation = dir.seq, dir.generation
  r.nonce = nonce_of(dir.iv, dir.seq)
  r.plain, r.tag_ok = aead_open(SUITE_AEAD[s.suite], dir.key, r.nonce, header, sealed)
  dir.seq = dir.seq + 1
  if rtype == HS_KEY_UPDATE and r.tag_ok ~= false then
    -- the sender moves to its next traffic secret after this record (sealed under the old)
    install(dir, expand_label(dir.secret, "traffic upd", "", 32), SUITE_KEY_LEN[s.suite])
    dir.generation = dir.generation + 1
  end
  if rtype == HS_APP and r.tag_ok ~= false then
    r.units = h2_units(dir, sender, r.plain)
  end
  return r
end

local function first_pass(s, sender, rtype, header, payload)
  local dir = s.dirs[sender]
  if dir.protected and rtype ~= HS_HANDSHAKE then
    return open_record(s, sender, dir, rtype, header, payload)
  end
  local r = { protected = false }
  if rtype == HS_HANDSHAKE then
    if sender == "client" and s.client_port == nil and payload:byte(1) == MSG_CLIENT_HELLO then
      s.client_addr, s.client_port = s.pending_src_addr, s.pending_src_port
    end
    r.messages = take_messages(dir, payload)
    for _, m in ipairs(r.messages) do
      learn(s, sender, m.bytes or payload:sub(m.offset + 1, m.offset + m.length))
    end
    if dir.protect_next then dir.protected = true end
  elseif rtype == HS_APP or rtype == HS_KEY_UPDATE then
    if s.client_random == nil then -- mid-session: everything past the handshake is sealed
      dir.protected = true
      return open_record(s, sender, dir, rtype, header, payload)
    end
  end
  return r
end

-- ------------------------------------------------------------------ the tree
local x509 = DissectorTable.get("media_type"):get_dissector("application/pkix-cert")
local ocsp = DissectorTable.get("media_type"):get_dissector("application/ocsp-response")
local http2 = Dissector.get("http2")

local function u16list(tree, tvb, offset, length, field)
  for i = 0, length - 2, 2 do tree:add(field, tvb(offset + i, 2)) end
end

local function malformed(tree, range, text)  -- expert info on the bytes at fault
  tree:add_tvb_expert_info(E.malformed, range, text)
  return false
end

local BODY = {}

BODY[1] = function(t, tvb, o, n, s, pinfo) -- ClientHello
  local vl = tvb(o, 1):uint(); t:add(F.versions_length, tvb(o, 1)); u16list(t, tvb, o + 1, vl, F.version)
  local p = o + 1 + vl
  t:add(F.random, tvb(p, RANDOM_LEN)); p = p + RANDOM_LEN
  local sl = tvb(p, 1):uint(); t:add(F.suites_length, tvb(p, 1)); u16list(t, tvb, p + 1, sl, F.suite)
  p = p + 1 + sl
  if p < o + n then -- a resumption offer (MTD/1.1+)
    local tl = tvb(p, 2):uint()
    t:add(F.ticket_length, tvb(p, 2)); t:add(F.ticket, tvb(p + 2, tl)); p = p + 2 + tl
    local xl = tvb(p, 1):uint()
    t:add(F.share_length, tvb(p, 1)); t:add(F.share, tvb(p + 1, xl)); p = p + 1 + xl
    t:add(F.binder, tvb(p, BINDER_LEN)); p = p + BINDER_LEN
  end
  return p == o + n
end

BODY[2] = function(t, tvb, o, n) -- ServerHello
  t:add(F.version, tvb(o, 2)); t:add(F.random, tvb(o + 2, RANDOM_LEN)); t:add(F.suite, tvb(o + 2 + RANDOM_LEN, 2))
  local p = o + 4 + RANDOM_LEN
  if tvb(o + 2 + RANDOM_LEN - 8, 8):string() == "MTD12DWN" then
    t:add(F.claim, tvb(o + 2 + RANDOM_LEN - 8, 8), "downgrade mark MTD12DWN: a 1.2 server negotiated an older version")
  end
  if p < o + n then t:add(F.resumed, tvb(p, 1)); t:add(F.refusal, tvb(p + 1, 1)); p = p + 2 end
  return p == o + n
end

BODY[4] = function(t, tvb, o, n) -- NewSessionTicket
  t:add(F.lifetime, tvb(o, 4)); t:add(F.max_uses, tvb(o + 4, 4))
  local tl = tvb(o + 8, 2):uint(); t:add(F.ticket_length, tvb(o + 8, 2)); t:add(F.ticket, tvb(o + 10, tl))
  return o + 10 + tl == o + n
end

BODY[11] = function(t, tvb, o, n, s, pinfo) -- Certificate
  local count = tvb(o, 1):uint(); t:add(F.cert_count, tvb(o, 1))
  local p = o + 1
  for i = 1, count do
    local cl = tvb(p, 3):uint()
    t:add(F.cert_length, tvb(p, 3))
    local ct = t:add(F.cert, tvb(p + 3, cl))
    ct:append_text(i == 1 and " (leaf)" or " (issuer)")
    if x509 then x509:call(tvb(p + 3, cl):tvb(), pinfo, ct) end
    p = p + 3 + cl
  end
  local sl = tvb(p, 3):uint(); t:add(F.status_length, tvb(p, 3))
  if sl > 0 then
    local st = t:add(F.status, tvb(p + 3, sl))
    if ocsp then ocsp:call(tvb(p + 3, sl):tvb(), pinfo, st) end
  else
    t:add(F.claim, tvb(p, 3), "no stapled status")
  end
  return p + 3 + sl == o + n
end

BODY[12] = function(t, tvb, o, n) -- ServerKeyShare
  local group = tvb(o, 2):uint(); t:add(F.group, tvb(o, 2))
  if GROUPS[group] == "X25519MLKEM768" then
    local kl = tvb(o + 2, 2):uint(); t:add(F.key_length, tvb(o + 2, 2))
    t:add(F.mlkem_ek, tvb(o + 4, MLKEM768_EK_LEN)); t:add(F.x25519, tvb(o + 4 + MLKEM768_EK_LEN, X25519_LEN))
    return o + 4 + kl == o + n and kl == MLKEM768_EK_LEN + X25519_LEN
  end
  local kl = tvb(o + 2, 1):uint(); t:add(F.key_length, tvb(o + 2, 1), kl); t:add(F.x25519, tvb(o + 3, kl))
  return o + 3 + kl == o + n
end

BODY[13] = function(t, tvb, o, n) -- CertificateRequest
  local sl = tvb(o, 1):uint(); t:add(F.schemes_length, tvb(o, 1)); u16list(t, tvb, o + 1, sl, F.scheme)
  return o + 1 + sl == o + n
end

BODY[15] = function(t, tvb, o, n) -- CertificateVerify
  t:add(F.scheme, tvb(o, 2))
  local sl = tvb(o + 2, 2):uint(); t:add(F.sig_length, tvb(o + 2, 2)); t:add(F.signature, tvb(o + 4, sl))
  return o + 4 + sl == o + n
end

BODY[16] = function(t, tvb, o, n, s) -- ClientKeyExchange
  local dl = tvb(o, 2):uint(); t:add(F.cke_length, tvb(o, 2))
  local kx = s.suite and SUITE_KX[s.suite]
  if kx == "hybrid" and dl == MLKEM768_CT_LEN + X25519_LEN then
    t:add(F.mlkem_ct, tvb(o + 2, MLKEM768_CT_LEN)); t:add(F.x25519, tvb(o + 2 + MLKEM768_CT_LEN, X25519_LEN))
  elseif kx == "rsa" then
    t:add(F.rsa_ct, tvb(o + 2, dl))
  else
    t:add(F.x25519, tvb(o + 2, dl))
  end
  return o + 2 + dl == o + n
end

BODY[20] = function(t, tvb, o, n) -- Finished
  t:add(F.verify_data, tvb(o, n))
  return n == 32
end

local function show_message(tree, mtvb, s, pinfo)
  local mt = mtvb(0, 1):uint()
  local n = mtvb(1, 3):uint()
  local name = MESSAGE_TYPES[mt] or ("unknown (" .. mt .. ")")
  local t = tree:add(F.hs, mtvb(0, 4 + n))
  t:set_text(name .. " (" .. (4 + n) .. " bytes)")
  t:add(F.hstype, mtvb(0, 1)); t:add(F.hslength, mtvb(1, 3))
  if STEP[mt] then t:add(F.step, STEP[mt]) end
  local body = BODY[mt]
  if body == nil then
    malformed(t, mtvb(0, 1), "unknown handshake message type " .. mt)
  else
    local ok, good = pcall(body, t, mtvb, 4, n, s, pinfo)
    if not ok or not good then malformed(t, mtvb(0, 4 + n), name .. ": fields do not fill its " .. n .. "-byte body (" .. tostring(good) .. ")") end
  end
  return name
end

local function show_alert(tree, atvb, in_clear)
  tree:add(F.alert_level, atvb(0, 1))
  tree:add(F.alert, atvb(1, 1))
  local code = atvb(1, 1):uint()
  local name = ALERTS[code] or ("unknown alert " .. code)
  if in_clear and code ~= 0 then
    tree:add(F.claim, atvb(0, 2), "in clear before keys: the sender's claim, unverified (anyone on the path could have sent it)")
    tree:add_proto_expert_info(E.claim)
    return "Alert (in clear, a claim): " .. name
  end
  return "Alert: " .. name
end

local function show_record(tree, rtvb, s, sender, r, pinfo, info)
  local rtype = rtvb(0, 1):uint()
  local length = rtvb(3, 2):uint()
  local t = tree:add(F.record, rtvb(0, HEADER_LEN + length))
  t:add(F.rtype, rtvb(0, 1)); t:add(F.rversion, rtvb(1, 2)); t:add(F.rlength, rtvb(3, 2))
  local label = (RECORD_TYPES[rtype] or "?") .. ", " .. sender .. " -> " .. (sender == "client" and "server" or "client")
  if not r.protected then
    t:set_text("Record: " .. label .. " (in clear)")
    if rtype == HS_HANDSHAKE then
      for _, m in ipairs(r.messages) do
        local mtvb = m.bytes and ByteArray.new(m.bytes, true):tvb("Reassembled MTD/1 handshake message")
          or rtvb(HEADER_LEN + m.offset, m.length):tvb()
        info[#info + 1] = show_message(t, mtvb, s, pinfo)
      end
      if #r.messages == 0 then info[#info + 1] = "Handshake fragment" end
    elseif rtype == HS_ALERT then
      if length ~= 2 then return malformed(t, rtvb(3, 2), "an alert is 2 bytes, this one " .. length) end
      info[#info + 1] = show_alert(t, rtvb(HEADER_LEN, 2):tvb(), true)
    else
      return malformed(t, rtvb(0, 1), RECORD_TYPES[rtype] .. " in clear before the handshake finished (unexpected_message)")
    end
    return true
  end
  t:set_text("Record: " .. label .. " (protected)")
  if length < TAG_LEN then return malformed(t, rtvb(3, 2), "a protected record of " .. length .. " bytes has no room for its 16-byte tag") end
  t:add(F.ciphertext, rtvb(HEADER_LEN, length - TAG_LEN))
  t:add(F.tag, rtvb(HEADER_LEN + length - TAG_LEN, TAG_LEN))
  if r.plain == nil then
    t:add(F.opaque, r.why)
    t:add_proto_expert_info(E.opaque, r.why)
    info[#info + 1] = (RECORD_TYPES[rtype] or "record") .. " (protected, not decrypted)"
    return true
  end
  t:add(F.seq, UInt64.new(r.seq)); t:add(F.generation, r.generation); t:add(F.nonce, to_hex(r.nonce))
  if r.tag_ok == false then
    t:add(F.tag_ok, false)
    t:add_proto_expert_info(E.tag_failed)
    info[#info + 1] = (RECORD_TYPES[rtype] or "record") .. " (AEAD tag FAILED: decrypt_error)"
    return true
  end
  if r.tag_ok == nil then t:add(F.opaque, "ChaCha20-Poly1305: decrypted, tag not checked by this dissector (no Poly1305 in luaossl)") else t:add(F.tag_ok, true) end
  local ptvb = ByteArray.new(r.plain, true):tvb("Decrypted MTD/1 record")
  local d = t:add(F.decrypted, ptvb())
  if rtype == HS_ALERT then
    info[#info + 1] = show_alert(d, ptvb, false) .. " (sealed: provably the peer's)"
  elseif rtype == HS_KEY_UPDATE then
    d:add(F.request_update, ptvb(0, 1))
    info[#info + 1] = "KeyUpdate (sealed)"
  else
    info[#info + 1] = "Application data (decrypted, " .. #r.plain .. " bytes)"
    if r.units and http2 then
      local saved = pinfo.can_desegment
      pinfo.can_desegment = 0
      for _, unit in ipairs(r.units) do
        pinfo.cols.info = ""
        http2:call(ByteArray.new(unit, true):tvb("Decrypted HTTP/2"), pinfo, tree)
        info.inner = info.inner or {}
        info.inner[#info.inner + 1] = tostring(pinfo.cols.info)
      end
      pinfo.can_desegment = saved
    end
  end
  return true
end

-- ------------------------------------------------------------------ entry points
function mtd.dissector(tvb, pinfo, tree)
  local total = tvb:len()
  local s = session_of(pinfo)
  local sender = nil
  local offset, index, info = 0, 0, {}
  local root = nil
  while offset < total do
    if total - offset < HEADER_LEN then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
      break
    end
    local rtype, version, length = tvb(offset, 1):uint(), tvb(offset + 1, 2):uint(), tvb(offset + 3, 2):uint()
    root = root or tree:add(mtd, tvb(offset))
    if RECORD_TYPES[rtype] == nil or version ~= RECORD_VERSION or length > MAX_RECORD then
      root:add_proto_expert_info(E.malformed, string.format(
        "not an MTD/1 record header: type %d, version 0x%04x, length %d", rtype, version, length))
      info[#info + 1] = "malformed record"
      offset = total
      break
    end
    if total - offset < HEADER_LEN + length then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = HEADER_LEN + length - (total - offset)
      break
    end
    sender = sender or (function()
      if not pinfo.visited and s.client_port == nil and rtype == HS_HANDSHAKE and tvb(offset + HEADER_LEN, 1):uint() == MSG_CLIENT_HELLO then
        s.pending_src_addr, s.pending_src_port = tostring(pinfo.src), pinfo.src_port
        return "client"
      end
      return sender_of(s, pinfo)
    end)()
    local key = pinfo.number .. ":" .. index
    local r = cache[key]
    if r == nil then
      local rtvb = tvb(offset, HEADER_LEN + length)
      r = first_pass(s, sender, rtype, rtvb(0, HEADER_LEN):bytes():raw(), rtvb(HEADER_LEN, length):bytes():raw())
      cache[key] = r
    end
    show_record(root, tvb(offset, HEADER_LEN + length):tvb(), s, sender, r, pinfo, info)
    offset = offset + HEADER_LEN + length
    index = index + 1
  end
  if #info > 0 then
    -- the decrypted HTTP/2's own summary (its method, its frames) follows ours
    local inner = info.inner and (" | " .. table.concat(info.inner, ", ")) or ""
    pinfo.cols.protocol = info.inner and "MTD/1+HTTP2" or "MTD/1"
    pinfo.cols.info = table.concat(info, ", ") .. inner
  end
  -- everything is ours: what is left waits for more segments (desegment_len) or is
  -- malformed (said above); returning less would hand it to other dissectors
  return total
end

local function heuristic(tvb, pinfo, tree)
  if tvb:len() < HEADER_LEN + 1 then return false end
  local rtype, version, length = tvb(0, 1):uint(), tvb(1, 2):uint(), tvb(3, 2):uint()
  if version ~= RECORD_VERSION or length == 0 or length > MAX_RECORD then return false end
  if not ((rtype == HS_HANDSHAKE and tvb(5, 1):uint() == MSG_CLIENT_HELLO) or (rtype == HS_ALERT and length == 2)) then
    return false
  end
  pinfo.conversation = mtd
  mtd.dissector(tvb, pinfo, tree)
  return true
end

mtd:register_heuristic("tcp", heuristic)
DissectorTable.get("tcp.port"):add(mtd.prefs.ports, mtd)
