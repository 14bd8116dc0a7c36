/* verify.c: a C reference for the crypto and parsing work of one L402 verification, on OpenSSL,
 * to calibrate what this machine can do. Same token and same steps as benches/l402_verify.rs:
 * split "L402 <b64>:<hex>", base64 decode, V2 parse, identifier decode (66 bytes, version 0),
 * sha256(preimage) == payment hash, sha256(identifier), HMAC-SHA256 key derivation and chain
 * over the identifier and three caveats, constant-time signature compare, caveat checks.
 *
 * Two HMAC variants, both in the JSON line:
 *   hmac_oneshot  OpenSSL's HMAC() one-shot per link (what most C code writes)
 *   sha256_manual HMAC built on SHA256_Init/Update/Final with the generator key's pads
 *                 precomputed (the cheapest OpenSSL route: a ceiling for this CPU)
 *
 * Build: cc -O2 -o verify-c verify.c -lcrypto
 * Run:   verify-c HEADER ROOT_KEY_HEX NOW SECS ROUNDS   -> one JSON line per variant
 * Rates are per second of process CPU time; wall_rates per elapsed second.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_CAV 8
static const char GEN[] = "macaroons-key-generator";

typedef struct {
  const uint8_t *id; size_t id_len;
  const uint8_t *cav[MAX_CAV]; size_t cav_len[MAX_CAV]; int ncav;
  const uint8_t *sig;
} mac_t;

static int uvarint(const uint8_t **p, const uint8_t *end, size_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 10 && *p < end; i++) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) { *out = (size_t)v; return 0; }
  }
  return -1;
}

/* one field: type, data; EOS gives type 0 */
static int field(const uint8_t **p, const uint8_t *end, int *type, const uint8_t **data, size_t *len) {
  if (*p >= end) return -1;
  *type = *(*p)++;
  if (*type == 0) { *len = 0; return 0; }
  if (uvarint(p, end, len) || (size_t)(end - *p) < *len) return -1;
  *data = *p; *p += *len;
  return 0;
}

static int parse_v2(const uint8_t *b, size_t n, mac_t *m) {
  const uint8_t *p = b + 1, *end = b + n, *d; size_t len; int t;
  if (n < 1 || b[0] != 2) return -1;
  if (field(&p, end, &t, &d, &len)) return -1;
  if (t == 1 && field(&p, end, &t, &d, &len)) return -1;
  if (t != 2) return -1;
  m->id = d; m->id_len = len;
  if (field(&p, end, &t, &d, &len) || t != 0) return -1;
  m->ncav = 0;
  for (;;) {
    if (field(&p, end, &t, &d, &len)) return -1;
    if (t == 0) break;
    if (t != 2 || m->ncav == MAX_CAV) return -1;
    m->cav[m->ncav] = d; m->cav_len[m->ncav++] = len;
    if (field(&p, end, &t, &d, &len) || t != 0) return -1;
  }
  if (field(&p, end, &t, &d, &len) || t != 6 || len != 32 || p != end) return -1;
  m->sig = d;
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* caveat checks on the raw bytes (no allocation) */
static int check_caveat(const uint8_t *c, size_t n, uint64_t now) {
  const uint8_t *eq = memchr(c, '=', n);
  if (!eq) return -1;
  size_t cl = (size_t)(eq - c), vl = n - cl - 1;
  const char *v = (const char *)eq + 1;
  if (cl == 8 && !memcmp(c, "services", 8)) {
    /* name:tier[,name:tier] containing demo */
    size_t i = 0;
    while (i < vl) {
      size_t j = i; while (j < vl && v[j] != ',') j++;
      const char *colon = memchr(v + i, ':', j - i);
      if (!colon) return -1;
      if ((size_t)(colon - (v + i)) == 4 && !memcmp(v + i, "demo", 4)) return 0;
      i = j + 1;
    }
    return -1;
  }
  if (cl == 17 && !memcmp(c, "demo_capabilities", 17)) {
    size_t i = 0;
    while (i <= vl) {
      size_t j = i; while (j < vl && v[j] != ',') j++;
      if (j - i == 4 && !memcmp(v + i, "read", 4)) return 0;
      i = j + 1;
    }
    return -1;
  }
  if (cl == 16 && !memcmp(c, "demo_valid_until", 16)) {
    uint64_t t = 0;
    if (vl == 0 || vl > 19) return -1;
    for (size_t i = 0; i < vl; i++) {
      if (v[i] < '0' || v[i] > '9') return -1;
      t = t * 10 + (uint64_t)(v[i] - '0');
    }
    return now <= t ? 0 : -1;
  }
  return -1;
}

/* manual HMAC over SHA256_CTX, with the generator key's pad states precomputed */
static SHA256_CTX gen_in, gen_out;
static void pads(const uint8_t *key, size_t klen, SHA256_CTX *in, SHA256_CTX *out) {
  uint8_t k[64] = {0}, ip[64], op[64];
  memcpy(k, key, klen); /* keys here are <= 64 bytes */
  for (int i = 0; i < 64; i++) { ip[i] = k[i] ^ 0x36; op[i] = k[i] ^ 0x5c; }
  SHA256_Init(in); SHA256_Update(in, ip, 64);
  SHA256_Init(out); SHA256_Update(out, op, 64);
}
static void hmac_from(const SHA256_CTX *in0, const SHA256_CTX *out0, const uint8_t *msg, size_t n, uint8_t *md) {
  SHA256_CTX in = *in0, out = *out0; uint8_t inner[32];
  SHA256_Update(&in, msg, n); SHA256_Final(inner, &in);
  SHA256_Update(&out, inner, 32); SHA256_Final(md, &out);
}
static void hmac_manual(const uint8_t *key, size_t klen, const uint8_t *msg, size_t n, uint8_t *md) {
  SHA256_CTX in, out; pads(key, klen, &in, &out); hmac_from(&in, &out, msg, n, md);
}

static int verify(const char *header, const uint8_t *root, size_t root_len, uint64_t now, int manual) {
  while (*header == ' ') header++;
  const char *sp = strchr(header, ' ');
  if (!sp) return -1;
  size_t sl = (size_t)(sp - header);
  if (!(sl == 4 && (!strncasecmp(header, "L402", 4) || !strncasecmp(header, "LSAT", 4)))) return -1;
  const char *b64 = sp + 1; while (*b64 == ' ') b64++;
  const char *colon = strrchr(b64, ':');
  if (!colon || strlen(colon + 1) != 64) return -1;
  uint8_t pre[32];
  for (int i = 0; i < 32; i++) {
    int hi = hexval(colon[1 + 2 * i]), lo = hexval(colon[2 + 2 * i]);
    if (hi < 0 || lo < 0) return -1;
    pre[i] = (uint8_t)(hi << 4 | lo);
  }
  size_t blen = (size_t)(colon - b64);
  uint8_t raw[1024];
  if (blen % 4 || blen / 4 * 3 > sizeof raw) return -1;
  int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
  if (n < 0) return -1;
  if (blen && b64[blen - 1] == '=') n--;
  if (blen > 1 && b64[blen - 2] == '=') n--;
  mac_t m;
  if (parse_v2(raw, (size_t)n, &m)) return -1;
  if (m.id_len != 66 || m.id[0] || m.id[1]) return -1;
  uint8_t h[32], key_id[32], sig[32], k[32];
  SHA256(pre, 32, h);
  if (CRYPTO_memcmp(h, m.id + 2, 32)) return -1;
  SHA256(m.id, m.id_len, key_id);
  if (manual) {
    hmac_from(&gen_in, &gen_out, root, root_len, k);
    hmac_manual(k, 32, m.id, m.id_len, sig);
    for (int i = 0; i < m.ncav; i++) hmac_manual(sig, 32, m.cav[i], m.cav_len[i], sig);
  } else {
    unsigned int l;
    HMAC(EVP_sha256(), GEN, sizeof GEN - 1, root, root_len, k, &l);
    HMAC(EVP_sha256(), k, 32, m.id, m.id_len, sig, &l);
    for (int i = 0; i < m.ncav; i++) HMAC(EVP_sha256(), sig, 32, m.cav[i], m.cav_len[i], sig, &l);
  }
  if (CRYPTO_memcmp(sig, m.sig, 32)) return -1;
  for (int i = 0; i < m.ncav; i++)
    if (check_caveat(m.cav[i], m.cav_len[i], now)) return -1;
  (void)key_id;
  return 0;
}

static double secs_now(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double cpu_now(void) {
  struct timespec ts; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

static void run(const char *name, const char *header, const uint8_t *root, uint64_t now, double secs, int rounds, int manual) {
  double rates[64], wall[64], sorted[64];
  if (rounds > 64) rounds = 64;
  for (int r = 0; r <= rounds; r++) {
    double budget = r == 0 ? 0.2 : secs, t0 = secs_now(), c0 = cpu_now(), used;
    long nn = 0;
    for (;;) {
      for (int i = 0; i < 1024; i++)
        if (verify(header, root, 32, now, manual)) { fprintf(stderr, "verification failed\n"); exit(1); }
      nn += 1024;
      used = cpu_now() - c0;
      if (used >= budget) break;
    }
    if (r > 0) { rates[r - 1] = (double)nn / used; wall[r - 1] = (double)nn / (secs_now() - t0); }
  }
  memcpy(sorted, rates, sizeof(double) * (size_t)rounds);
  qsort(sorted, (size_t)rounds, sizeof(double), cmp);
  printf("{\"impl\":\"%s (%s)\",\"rates\":[", name, OPENSSL_VERSION_TEXT);
  for (int i = 0; i < rounds; i++) printf("%s%.0f", i ? "," : "", rates[i]);
  printf("],\"median\":%.0f,\"best\":%.0f,\"wall_rates\":[", sorted[rounds / 2], sorted[rounds - 1]);
  for (int i = 0; i < rounds; i++) printf("%s%.0f", i ? "," : "", wall[i]);
  printf("]}\n");
}

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: verify-c HEADER ROOT_KEY_HEX NOW SECS ROUNDS\n"); return 2; }
  uint8_t root[32];
  if (strlen(argv[2]) != 64) return 2;
  for (int i = 0; i < 32; i++) root[i] = (uint8_t)(hexval(argv[2][2 * i]) << 4 | hexval(argv[2][2 * i + 1]));
  uint64_t now = strtoull(argv[3], NULL, 10);
  double secs = atof(argv[4]);
  int rounds = atoi(argv[5]);
  pads((const uint8_t *)GEN, sizeof GEN - 1, &gen_in, &gen_out);
  if (verify(argv[1], root, 32, now, 0) || verify(argv[1], root, 32, now, 1)) {
    fprintf(stderr, "the token does not verify\n"); return 1;
  }
  const char *which = getenv("VERIFY_C_VARIANT"); /* oneshot | manual | both (default) */
  if (!which || strcmp(which, "manual")) run("c openssl HMAC() one-shot", argv[1], root, now, secs, rounds, 0);
  if (!which || strcmp(which, "oneshot")) run("c openssl SHA256_* manual HMAC", argv[1], root, now, secs, rounds, 1);
  return 0;
}
