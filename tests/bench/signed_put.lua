-- tests/bench/signed_put.lua - wrk sends POST /v1/deposits, each signed as
-- it is sent (KT1-HMAC-SHA256 over libcrypto, through LuaJIT's FFI).
--
--   wrk -tT ... -s signed_put.lua URL -- SECRET_HEX FPR SIZE
--
-- The server answers a signed write it has seen with the first answer and
-- writes nothing (docs/api.md, "Replayed requests"), so a load of
-- pre-signed lines sent over and over would measure replays, not
-- deposits.  Each request here is a new one: its own name (thread, count),
-- the thread's SIZE random bytes as content, the current second as ts,
-- and its signature: HMAC-SHA256(secret, "POST\n/v1/deposits\n" ts "\n"
-- hex(SHA-256(body))), as src/common/crypto.c crypto_kt1_mac makes it.
-- setup() and done() (the "JSON {...}" line bench.py reads) are
-- requests.lua's.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "requests.lua")

local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);
]]
local crypto = ffi.load("crypto")

local secret, fpr, content, n = nil, nil, nil, 0
local md = ffi.new("unsigned char[32]")
local mdlen = ffi.new("unsigned int[1]")

local function hex(buf, len)
   local t = {}
   for i = 0, len - 1 do t[#t + 1] = string.format("%02x", buf[i]) end
   return table.concat(t)
end

function init(args)
   local shex, size = args[1], tonumber(args[3])
   fpr = args[2]
   assert(shex and #shex == 64 and fpr and size, "arguments: SECRET_HEX FPR SIZE")
   secret = shex:gsub("..", function(h) return string.char(tonumber(h, 16)) end)
   local raw = ffi.new("unsigned char[?]", size)
   assert(crypto.RAND_bytes(raw, size) == 1, "RAND_bytes failed")
   local b64 = ffi.new("unsigned char[?]", 4 * math.ceil(size / 3) + 1)
   local len = crypto.EVP_EncodeBlock(b64, raw, size)
   content = ffi.string(b64, len)
end

function request()
   n = n + 1
   local body = string.format('{"name":"put-%s-%d","content":"%s"}', tid, n, content)
   crypto.SHA256(body, #body, md)
   local ts = tostring(os.time())
   local msg = "POST\n/v1/deposits\n" .. ts .. "\n" .. hex(md, 32)
   crypto.HMAC(crypto.EVP_sha256(), secret, #secret, msg, #msg, md, mdlen)
   return wrk.format("POST", "/v1/deposits", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = string.format("KT1-HMAC-SHA256 fp=%s,ts=%s,sig=%s", fpr, ts,
                                        hex(md, 32)),
   }, body)
end
