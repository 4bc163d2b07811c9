/* Rows of a SQLite table read with SQLite's C API and turned into COPY lines and row digests
 * without a Python object per value: the compiled twin of the common cases of
 * domain/sqlite_values.py, domain/sqlite_time.py and domain/sqlite_json.py, used through
 * clients/sqlite_copy.py.
 *
 * Only the common value kinds are converted here, by the same rules and to the same bytes as
 * the Python converters. A row holding anything else (a value those converters would reject,
 * or one of a kind this file does not handle) is handed back as the tuple the `sqlite3` module
 * would have made (TEXT as bytearray, BLOB as bytes), and the Python converters decide it, so
 * rejects and their reasons stay theirs. The GIL is released while rows are read and
 * converted: the COPY writers run meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

/* Column kinds, as clients/sqlite_copy.py numbers them. */
enum {
    K_OTHER = 0, /* only NULL is converted here; any other value goes back to Python */
    K_SMALLINT = 1,
    K_INTEGER = 2,
    K_BIGINT = 3,
    K_TEXT = 4,
    K_VARCHAR = 5,
    K_TIMESTAMPTZ = 6,
    K_TIMESTAMP = 7,
    K_JSONB = 8,
    K_BOOLEAN = 9,
};

/* --- md5 (RFC 1321): the row digest is its first 64 bits --------------------------------- */

/* The rounds unrolled, as in the public-domain implementation by Alexander Peslyak. */
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define MD5_STEP(f, a, b, c, d, x, t, s)                                                          \
    (a) += f((b), (c), (d)) + (x) + (t);                                                           \
    (a) = (((a) << (s)) | (((a)&0xffffffffu) >> (32 - (s))));                                      \
    (a) += (b);

static void md5_block(uint32_t h[4], const unsigned char *p) {
    uint32_t w[16];
    memcpy(w, p, 64); /* little-endian machines only (x86-64, arm64): checked at import */
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    MD5_STEP(MD5_F, a, b, c, d, w[0], 0xd76aa478, 7)
    MD5_STEP(MD5_F, d, a, b, c, w[1], 0xe8c7b756, 12)
    MD5_STEP(MD5_F, c, d, a, b, w[2], 0x242070db, 17)
    MD5_STEP(MD5_F, b, c, d, a, w[3], 0xc1bdceee, 22)
    MD5_STEP(MD5_F, a, b, c, d, w[4], 0xf57c0faf, 7)
    MD5_STEP(MD5_F, d, a, b, c, w[5], 0x4787c62a, 12)
    MD5_STEP(MD5_F, c, d, a, b, w[6], 0xa8304613, 17)
    MD5_STEP(MD5_F, b, c, d, a, w[7], 0xfd469501, 22)
    MD5_STEP(MD5_F, a, b, c, d, w[8], 0x698098d8, 7)
    MD5_STEP(MD5_F, d, a, b, c, w[9], 0x8b44f7af, 12)
    MD5_STEP(MD5_F, c, d, a, b, w[10], 0xffff5bb1, 17)
    MD5_STEP(MD5_F, b, c, d, a, w[11], 0x895cd7be, 22)
    MD5_STEP(MD5_F, a, b, c, d, w[12], 0x6b901122, 7)
    MD5_STEP(MD5_F, d, a, b, c, w[13], 0xfd987193, 12)
    MD5_STEP(MD5_F, c, d, a, b, w[14], 0xa679438e, 17)
    MD5_STEP(MD5_F, b, c, d, a, w[15], 0x49b40821, 22)
    MD5_STEP(MD5_G, a, b, c, d, w[1], 0xf61e2562, 5)
    MD5_STEP(MD5_G, d, a, b, c, w[6], 0xc040b340, 9)
    MD5_STEP(MD5_G, c, d, a, b, w[11], 0x265e5a51, 14)
    MD5_STEP(MD5_G, b, c, d, a, w[0], 0xe9b6c7aa, 20)
    MD5_STEP(MD5_G, a, b, c, d, w[5], 0xd62f105d, 5)
    MD5_STEP(MD5_G, d, a, b, c, w[10], 0x02441453, 9)
    MD5_STEP(MD5_G, c, d, a, b, w[15], 0xd8a1e681, 14)
    MD5_STEP(MD5_G, b, c, d, a, w[4], 0xe7d3fbc8, 20)
    MD5_STEP(MD5_G, a, b, c, d, w[9], 0x21e1cde6, 5)
    MD5_STEP(MD5_G, d, a, b, c, w[14], 0xc33707d6, 9)
    MD5_STEP(MD5_G, c, d, a, b, w[3], 0xf4d50d87, 14)
    MD5_STEP(MD5_G, b, c, d, a, w[8], 0x455a14ed, 20)
    MD5_STEP(MD5_G, a, b, c, d, w[13], 0xa9e3e905, 5)
    MD5_STEP(MD5_G, d, a, b, c, w[2], 0xfcefa3f8, 9)
    MD5_STEP(MD5_G, c, d, a, b, w[7], 0x676f02d9, 14)
    MD5_STEP(MD5_G, b, c, d, a, w[12], 0x8d2a4c8a, 20)
    MD5_STEP(MD5_H, a, b, c, d, w[5], 0xfffa3942, 4)
    MD5_STEP(MD5_H, d, a, b, c, w[8], 0x8771f681, 11)
    MD5_STEP(MD5_H, c, d, a, b, w[11], 0x6d9d6122, 16)
    MD5_STEP(MD5_H, b, c, d, a, w[14], 0xfde5380c, 23)
    MD5_STEP(MD5_H, a, b, c, d, w[1], 0xa4beea44, 4)
    MD5_STEP(MD5_H, d, a, b, c, w[4], 0x4bdecfa9, 11)
    MD5_STEP(MD5_H, c, d, a, b, w[7], 0xf6bb4b60, 16)
    MD5_STEP(MD5_H, b, c, d, a, w[10], 0xbebfbc70, 23)
    MD5_STEP(MD5_H, a, b, c, d, w[13], 0x289b7ec6, 4)
    MD5_STEP(MD5_H, d, a, b, c, w[0], 0xeaa127fa, 11)
    MD5_STEP(MD5_H, c, d, a, b, w[3], 0xd4ef3085, 16)
    MD5_STEP(MD5_H, b, c, d, a, w[6], 0x04881d05, 23)
    MD5_STEP(MD5_H, a, b, c, d, w[9], 0xd9d4d039, 4)
    MD5_STEP(MD5_H, d, a, b, c, w[12], 0xe6db99e5, 11)
    MD5_STEP(MD5_H, c, d, a, b, w[15], 0x1fa27cf8, 16)
    MD5_STEP(MD5_H, b, c, d, a, w[2], 0xc4ac5665, 23)
    MD5_STEP(MD5_I, a, b, c, d, w[0], 0xf4292244, 6)
    MD5_STEP(MD5_I, d, a, b, c, w[7], 0x432aff97, 10)
    MD5_STEP(MD5_I, c, d, a, b, w[14], 0xab9423a7, 15)
    MD5_STEP(MD5_I, b, c, d, a, w[5], 0xfc93a039, 21)
    MD5_STEP(MD5_I, a, b, c, d, w[12], 0x655b59c3, 6)
    MD5_STEP(MD5_I, d, a, b, c, w[3], 0x8f0ccc92, 10)
    MD5_STEP(MD5_I, c, d, a, b, w[10], 0xffeff47d, 15)
    MD5_STEP(MD5_I, b, c, d, a, w[1], 0x85845dd1, 21)
    MD5_STEP(MD5_I, a, b, c, d, w[8], 0x6fa87e4f, 6)
    MD5_STEP(MD5_I, d, a, b, c, w[15], 0xfe2ce6e0, 10)
    MD5_STEP(MD5_I, c, d, a, b, w[6], 0xa3014314, 15)
    MD5_STEP(MD5_I, b, c, d, a, w[13], 0x4e0811a1, 21)
    MD5_STEP(MD5_I, a, b, c, d, w[4], 0xf7537e82, 6)
    MD5_STEP(MD5_I, d, a, b, c, w[11], 0xbd3af235, 10)
    MD5_STEP(MD5_I, c, d, a, b, w[2], 0x2ad7d2bb, 15)
    MD5_STEP(MD5_I, b, c, d, a, w[9], 0xeb86d391, 21)
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

/* The first 8 bytes of md5(data) read big-endian as a signed integer (migrate_convert.row_digest). */
static int64_t md5_head(const unsigned char *data, size_t n) {
    uint32_t h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) md5_block(h, data + i);
    unsigned char tail[128];
    size_t r = n - i;
    memcpy(tail, data + i, r);
    tail[r] = 0x80;
    size_t tl = r < 56 ? 64 : 128;
    memset(tail + r + 1, 0, tl - r - 1);
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++) tail[tl - 8 + k] = (unsigned char)(bits >> (8 * k));
    md5_block(h, tail);
    if (tl == 128) md5_block(h, tail + 64);
    unsigned char out[8];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) out[4 * k + j] = (unsigned char)(h[k] >> (8 * j));
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v = (v << 8) | out[k];
    return (int64_t)v;
}

/* --- a growing byte buffer ---------------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t more) {
    if (b->len + more <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
    return 1;
}

static int buf_put(buf_t *b, const void *s, size_t n) {
    if (!buf_reserve(b, n)) return 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 1;
}

/* COPY's text escaping, as domain/copy_fields.copy_escape writes it: the letter each special
 * byte is written as after a backslash, 0 for the bytes written as they are. */
static unsigned char copy_letter[256];

static void copy_letter_init(void) {
    copy_letter['\\'] = '\\';
    copy_letter['\t'] = 't';
    copy_letter['\n'] = 'n';
    copy_letter['\r'] = 'r';
    copy_letter['\b'] = 'b';
    copy_letter['\f'] = 'f';
    copy_letter['\v'] = 'v';
}

static int buf_put_escaped(buf_t *b, const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n && !copy_letter[s[i]]) i++;
    if (i == n) return buf_put(b, s, n); /* the common case: nothing to escape */
    if (!buf_reserve(b, 2 * n)) return 0;
    unsigned char *o = b->p + b->len;
    memcpy(o, s, i);
    o += i;
    for (; i < n; i++) {
        unsigned char c = s[i], e = copy_letter[c];
        if (e) {
            *o++ = '\\';
            *o++ = e;
        } else {
            *o++ = c;
        }
    }
    b->len = (size_t)(o - b->p);
    return 1;
}

/* --- value rules -------------------------------------------------------------------------- */

/* Strict UTF-8 without NUL, as Python's decoder accepts it; the number of characters, or -1. */
static Py_ssize_t utf8_chars(const unsigned char *s, size_t n) {
    Py_ssize_t chars = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            if (c == 0) return -1;
            i++;
            chars++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c == 0xE0) {
            need = 2;
            lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            need = 2;
        } else if (c == 0xED) {
            need = 2;
            hi = 0x9F;
        } else if (c == 0xF0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            need = 3;
        } else if (c == 0xF4) {
            need = 3;
            hi = 0x8F;
        } else {
            return -1;
        }
        if (i + need >= n) return -1;
        if (s[i + 1] < lo || s[i + 1] > hi) return -1;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return -1;
        i += need + 1;
        chars++;
    }
    return chars;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int two(const unsigned char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

static int days_in_month(int y, int m) {
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

/* `YYYY-MM-DD HH:MM:SS` (or with T): the fast path of sqlite_time._naive_iso. */
static int put_naive_iso(buf_t *b, const unsigned char *s, size_t n, int tz) {
    static const int digits[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    if (n != 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' ||
        s[16] != ':')
        return 0;
    for (size_t k = 0; k < sizeof digits / sizeof digits[0]; k++)
        if (!is_digit(s[digits[k]])) return 0;
    int year = two(s) * 100 + two(s + 2), month = two(s + 5), day = two(s + 8);
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        two(s + 11) > 23 || two(s + 14) > 59 || two(s + 17) > 59)
        return 0;
    if (!buf_reserve(b, 32)) return 0;
    memcpy(b->p + b->len, s, 19);
    b->p[b->len + 10] = ' ';
    b->len += 19;
    return tz ? buf_put(b, ".000000+00", 10) : buf_put(b, ".000000", 7);
}

/* Unix seconds, or milliseconds from 1e11 on (sqlite_time._from_unix, integers only). */
static int put_unix(buf_t *b, int64_t n, int tz) {
    int64_t secs, micros = 0;
    if (n >= 100000000000LL || n <= -100000000000LL) {
        secs = n / 1000;
        int64_t ms = n % 1000;
        if (ms < 0) {
            ms += 1000;
            secs -= 1;
        }
        micros = ms * 1000;
    } else {
        secs = n;
    }
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    /* days since 1970-01-01 to a civil date (H. Hinnant's algorithm) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y += 1;
    if (y < 1 || y > 9999) return 0;
    char text[48];
    int len = snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%06d%s", (int)y, (int)m,
                       (int)d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
                       (int)micros, tz ? "+00" : "");
    return buf_put(b, text, (size_t)len);
}

/* --- the app's flat JSON objects (sqlite_json._flat_jsonb) --------------------------------- */

typedef struct {
    size_t key, key_len; /* decoded key, in the scratch buffer */
    size_t val, val_len; /* the value as jsonb prints it, in the scratch buffer */
} member_t;

#define MAX_MEMBERS 64

static int json_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A JSON string at s[*i] (its opening quote), decoded into `out`; 0 where the json module's
 * strict scanner would fail, or for an escape the fast path leaves to Python (\u). */
static int json_string(const unsigned char *s, size_t n, size_t *i, buf_t *out) {
    size_t k = *i + 1;
    while (k < n) {
        unsigned char c = s[k];
        if (c == '"') {
            *i = k + 1;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (k + 1 >= n) return 0;
            unsigned char e = s[k + 1], d;
            switch (e) {
            case '"': d = '"'; break;
            case '\\': d = '\\'; break;
            case '/': d = '/'; break;
            case 'b': d = '\b'; break;
            case 'f': d = '\f'; break;
            case 'n': d = '\n'; break;
            case 'r': d = '\r'; break;
            case 't': d = '\t'; break;
            default: return 0;
            }
            if (!buf_put(out, &d, 1)) return 0;
            k += 2;
            continue;
        }
        if (!buf_put(out, &c, 1)) return 0;
        k++;
    }
    return 0;
}

/* json.encoder.encode_basestring of decoded ASCII text. */
static int json_quote(buf_t *out, const unsigned char *s, size_t n) {
    if (!buf_reserve(out, 6 * n + 2)) return 0;
    unsigned char *o = out->p + out->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        char e = 0;
        switch (c) {
        case '"': e = '"'; break;
        case '\\': e = '\\'; break;
        case '\b': e = 'b'; break;
        case '\f': e = 'f'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        case '\t': e = 't'; break;
        }
        if (e) {
            *o++ = '\\';
            *o++ = (unsigned char)e;
        } else if (c < 0x20) {
            o += sprintf((char *)o, "\\u%04x", c);
        } else {
            *o++ = c;
        }
    }
    *o++ = '"';
    out->len = (size_t)(o - out->p);
    return 1;
}

static _Thread_local const unsigned char *json_scratch_base;

static int member_order(const void *pa, const void *pb) {
    const member_t *a = pa, *b = pb;
    if (a->key_len != b->key_len) return a->key_len < b->key_len ? -1 : 1;
    return memcmp(json_scratch_base + a->key, json_scratch_base + b->key, a->key_len);
}

/* Writes the jsonb text of a flat object, COPY-escaped, into `b`; 0 for anything else. */
static int put_flat_jsonb(buf_t *b, buf_t *scratch, const unsigned char *s, size_t n) {
    if (n == 0 || s[0] != '{') return 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] >= 0x80) return 0;
        if (s[k] == '\\' && k + 1 < n && s[k + 1] == 'u') return 0;
    }
    member_t members[MAX_MEMBERS];
    int count = 0;
    scratch->len = 0;
    size_t i = 1;
    while (i < n && json_ws(s[i])) i++;
    if (i < n && s[i] == '}') {
        i++;
    } else {
        for (;;) {
            if (count == MAX_MEMBERS || i >= n || s[i] != '"') return 0;
            member_t *m = &members[count++];
            m->key = scratch->len;
            if (!json_string(s, n, &i, scratch)) return 0;
            m->key_len = scratch->len - m->key;
            while (i < n && json_ws(s[i])) i++;
            if (i >= n || s[i] != ':') return 0;
            i++;
            while (i < n && json_ws(s[i])) i++;
            if (i >= n) return 0;
            m->val = scratch->len;
            unsigned char c = s[i];
            if (c == '"') {
                buf_t text = {0};
                size_t start = scratch->len;
                /* decode into a temporary buffer, then quote into scratch */
                if (!json_string(s, n, &i, &text)) {
                    free(text.p);
                    return 0;
                }
                int ok = json_quote(scratch, text.p ? text.p : (const unsigned char *)"", text.len);
                free(text.p);
                if (!ok) return 0;
                m->val = start;
            } else if (c == 't' && n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
                if (!buf_put(scratch, "true", 4)) return 0;
                i += 4;
            } else if (c == 'f' && n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
                if (!buf_put(scratch, "false", 5)) return 0;
                i += 5;
            } else if (c == 'n' && n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
                if (!buf_put(scratch, "null", 4)) return 0;
                i += 4;
            } else if (c == '-' || is_digit(c)) {
                size_t start = i;
                if (c == '-') i++;
                if (i >= n || !is_digit(s[i])) return 0;
                if (s[i] == '0') {
                    i++;
                    if (i - start == 2) return 0; /* -0: Python prints 0; left to Python */
                } else {
                    while (i < n && is_digit(s[i])) i++;
                }
                if (i - start > 4000) return 0; /* Python's int text limit: left to Python */
                if (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) return 0; /* a float */
                if (!buf_put(scratch, s + start, i - start)) return 0;
            } else {
                return 0;
            }
            m->val_len = scratch->len - m->val;
            while (i < n && json_ws(s[i])) i++;
            if (i >= n) return 0;
            if (s[i] == ',') {
                i++;
                while (i < n && json_ws(s[i])) i++;
                continue;
            }
            if (s[i] == '}') {
                i++;
                break;
            }
            return 0;
        }
    }
    while (i < n && json_ws(s[i])) i++;
    if (i != n) return 0;
    json_scratch_base = scratch->p;
    qsort(members, (size_t)count, sizeof(member_t), member_order);
    for (int k = 1; k < count; k++)
        if (members[k].key_len == members[k - 1].key_len &&
            memcmp(scratch->p + members[k].key, scratch->p + members[k - 1].key,
                   members[k].key_len) == 0)
            return 0; /* a repeated key: left to Python */
    /* the text, then COPY-escaped (json_quote wrote the only backslashes) */
    buf_t text = {0};
    int ok = buf_put(&text, "{", 1);
    for (int k = 0; ok && k < count; k++) {
        if (k) ok = buf_put(&text, ", ", 2);
        ok = ok && json_quote(&text, scratch->p + members[k].key, members[k].key_len) &&
             buf_put(&text, ": ", 2) &&
             buf_put(&text, scratch->p + members[k].val, members[k].val_len);
    }
    ok = ok && buf_put(&text, "}", 1) && buf_put_escaped(b, text.p, text.len);
    free(text.p);
    return ok;
}

/* --- one value into its COPY field -------------------------------------------------------- */

static const int64_t int_low[] = {0, -32768LL, -2147483648LL, INT64_MIN};
static const int64_t int_high[] = {0, 32767LL, 2147483647LL, INT64_MAX};

/* 1 written, 0 for Python to decide. */
static int put_value(buf_t *b, buf_t *scratch, sqlite3_stmt *st, int col, int kind, long limit) {
    int type = sqlite3_column_type(st, col);
    switch (kind) {
    case K_SMALLINT:
    case K_INTEGER:
    case K_BIGINT: {
        if (type != SQLITE_INTEGER) return 0;
        sqlite3_int64 v = sqlite3_column_int64(st, col);
        if (v < int_low[kind] || v > int_high[kind]) return 0;
        char text[24];
        int len = snprintf(text, sizeof text, "%lld", (long long)v);
        return buf_put(b, text, (size_t)len);
    }
    case K_TEXT:
    case K_VARCHAR: {
        if (type == SQLITE_INTEGER && kind == K_TEXT) {
            char text[24];
            int len = snprintf(text, sizeof text, "%lld", (long long)sqlite3_column_int64(st, col));
            return buf_put(b, text, (size_t)len);
        }
        if (type != SQLITE_TEXT) return 0;
        const unsigned char *s = sqlite3_column_blob(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        if (n == 0) return 1;
        Py_ssize_t chars = utf8_chars(s, n);
        if (chars < 0) return 0;
        if (kind == K_VARCHAR && chars > limit) return 0;
        return buf_put_escaped(b, s, n);
    }
    case K_TIMESTAMPTZ:
    case K_TIMESTAMP: {
        int tz = kind == K_TIMESTAMPTZ;
        if (type == SQLITE_INTEGER) return put_unix(b, sqlite3_column_int64(st, col), tz);
        if (type != SQLITE_TEXT) return 0;
        const unsigned char *s = sqlite3_column_blob(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        return put_naive_iso(b, s, n, tz);
    }
    case K_JSONB: {
        if (type != SQLITE_TEXT) return 0;
        const unsigned char *s = sqlite3_column_blob(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        size_t mark = b->len;
        if (put_flat_jsonb(b, scratch, s, n)) return 1;
        b->len = mark;
        return 0;
    }
    case K_BOOLEAN: {
        if (type != SQLITE_INTEGER) return 0;
        sqlite3_int64 v = sqlite3_column_int64(st, col);
        if (v == 1) return buf_put(b, "t", 1);
        if (v == 0) return buf_put(b, "f", 1);
        return 0;
    }
    default:
        return 0;
    }
}

/* The row as the sqlite3 module makes it (text_factory=bytearray): for Python to convert. */
static PyObject *row_tuple(sqlite3_stmt *st, int ncols) {
    PyObject *row = PyTuple_New(ncols);
    if (!row) return NULL;
    for (int i = 0; i < ncols; i++) {
        PyObject *v;
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: v = PyLong_FromLongLong(sqlite3_column_int64(st, i)); break;
        case SQLITE_FLOAT: v = PyFloat_FromDouble(sqlite3_column_double(st, i)); break;
        case SQLITE_TEXT: {
            const char *s = sqlite3_column_blob(st, i);
            v = PyByteArray_FromStringAndSize(s ? s : "", sqlite3_column_bytes(st, i));
            break;
        }
        case SQLITE_BLOB: {
            const char *s = sqlite3_column_blob(st, i);
            v = PyBytes_FromStringAndSize(s ? s : "", sqlite3_column_bytes(st, i));
            break;
        }
        default: v = Py_NewRef(Py_None);
        }
        if (!v) {
            Py_DECREF(row);
            return NULL;
        }
        PyTuple_SET_ITEM(row, i, v);
    }
    return row;
}

/* bytes comparison as Python orders bytes */
static int bytes_cmp(const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* --- the Reader type ---------------------------------------------------------------------- */

static PyObject *SqliteError;

typedef struct {
    PyObject_HEAD sqlite3 *db;
    sqlite3_stmt *st;
    char *sql;
    /* convert() runs with the interpreter lock released: a close() from another thread
     * meanwhile (the run stopping on an error or SIGTERM) waits for it to finish, so the
     * connection is never closed under a running statement. */
    int busy, close_pending;
} Reader;

static PyObject *raise_sqlite(Reader *self, int rc) {
    const char *msg = self->db ? sqlite3_errmsg(self->db) : sqlite3_errstr(rc);
    PyObject *args = Py_BuildValue("(si)", msg, rc);
    if (args) {
        PyErr_SetObject(SqliteError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"uri", "busy_timeout_ms", NULL};
    const char *uri;
    int timeout = 5000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|i", kw, &uri, &timeout)) return -1;
    int rc = sqlite3_open_v2(uri, &self->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    /* NOMUTEX: one thread at a time uses a reader (the conversion thread or process). */
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(self->db, timeout);
    /* One read transaction, started now, as clients/sqlite_source.py holds it. */
    if (rc == SQLITE_OK) rc = sqlite3_exec(self->db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(self->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        raise_sqlite(self, rc);
        sqlite3_close(self->db);
        self->db = NULL;
        return -1;
    }
    return 0;
}

static void Reader_close_db(Reader *self) {
    if (self->st) sqlite3_finalize(self->st);
    self->st = NULL;
    if (self->db) sqlite3_close(self->db);
    self->db = NULL;
    free(self->sql);
    self->sql = NULL;
}

static void Reader_dealloc(Reader *self) {
    Reader_close_db(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Reader_close(Reader *self, PyObject *Py_UNUSED(ignored)) {
    if (self->busy)
        self->close_pending = 1; /* the running convert() closes it when it returns */
    else
        Reader_close_db(self);
    Py_RETURN_NONE;
}

typedef struct {
    size_t *ends; /* end offset of each line in the buffer */
    int64_t *rowids, *hashes;
    unsigned char *archived;
    size_t count, cap;
} lines_t;

static int lines_add(lines_t *l, size_t end, int64_t rowid, int64_t hash, unsigned char old) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        size_t *e = realloc(l->ends, cap * sizeof *e);
        if (e) l->ends = e;
        int64_t *r = realloc(l->rowids, cap * sizeof *r);
        if (r) l->rowids = r;
        int64_t *h = realloc(l->hashes, cap * sizeof *h);
        if (h) l->hashes = h;
        unsigned char *a = realloc(l->archived, cap);
        if (a) l->archived = a;
        if (!e || !r || !h || !a) return 0;
        l->cap = cap;
    }
    l->ends[l->count] = end;
    l->rowids[l->count] = rowid;
    l->hashes[l->count] = hash;
    l->archived[l->count] = old;
    l->count++;
    return 1;
}

/* convert(sql, params, kinds, limits, not_null, hashed, partition_index, starts, ends, width,
 *         batch) -> (main, archive, fallback, last_rowid)
 * main and archive are (lines, rowids, hashes); fallback the rows for Python, as tuples;
 * last_rowid the last row read (None when the range held none). */
static PyObject *Reader_convert_locked(Reader *self, PyObject *args);

static PyObject *Reader_convert(Reader *self, PyObject *args) {
    if (!self->db || self->close_pending) {
        PyErr_SetString(PyExc_ValueError, "the reader is closed");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the reader is converting in another thread");
        return NULL;
    }
    self->busy = 1;
    PyObject *result = Reader_convert_locked(self, args);
    self->busy = 0;
    if (self->close_pending) Reader_close_db(self);
    return result;
}

static PyObject *Reader_convert_locked(Reader *self, PyObject *args) {
    const char *sql;
    PyObject *params, *kinds_obj, *limits_obj, *not_null_obj, *starts, *ends;
    int hashed, pidx, batch;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "sO!O!O!O!piO!O!ni", &sql, &PyTuple_Type, &params, &PyTuple_Type,
                          &kinds_obj, &PyTuple_Type, &limits_obj, &PyTuple_Type, &not_null_obj,
                          &hashed, &pidx, &PyList_Type, &starts, &PyList_Type, &ends, &width,
                          &batch))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_obj);
    if (PyTuple_GET_SIZE(limits_obj) != ncols || PyTuple_GET_SIZE(not_null_obj) != ncols ||
        ncols > 1000) {
        PyErr_SetString(PyExc_ValueError, "kinds, limits and not_null differ in length");
        return NULL;
    }
    int kinds[1000];
    long limits[1000];
    char not_null[1000];
    for (Py_ssize_t i = 0; i < ncols; i++) {
        kinds[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds_obj, i));
        limits[i] = PyLong_AsLong(PyTuple_GET_ITEM(limits_obj, i));
        not_null[i] = (char)PyObject_IsTrue(PyTuple_GET_ITEM(not_null_obj, i));
    }
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t nranges = PyList_GET_SIZE(starts);
    if (PyList_GET_SIZE(ends) != nranges) {
        PyErr_SetString(PyExc_ValueError, "starts and ends differ in length");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nranges; i++)
        if (!PyBytes_Check(PyList_GET_ITEM(starts, i)) || !PyBytes_Check(PyList_GET_ITEM(ends, i))) {
            PyErr_SetString(PyExc_TypeError, "archive ranges must be bytes");
            return NULL;
        }

    int rc;
    if (!self->sql || strcmp(self->sql, sql) != 0) {
        if (self->st) sqlite3_finalize(self->st);
        self->st = NULL;
        free(self->sql);
        self->sql = NULL;
        rc = sqlite3_prepare_v2(self->db, sql, -1, &self->st, NULL);
        if (rc != SQLITE_OK) return raise_sqlite(self, rc);
        self->sql = strdup(sql);
        if (!self->sql) return PyErr_NoMemory();
    } else {
        sqlite3_reset(self->st);
    }
    sqlite3_stmt *st = self->st;
    if (sqlite3_column_count(st) != ncols + 1) {
        PyErr_SetString(PyExc_ValueError, "the statement must select the columns then the rowid");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(params); i++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(params, i));
        if (v == -1 && PyErr_Occurred()) return NULL;
        sqlite3_bind_int64(st, (int)i + 1, v);
    }

    PyObject *fallback = PyList_New(0);
    if (!fallback) return NULL;
    buf_t b = {0}, scratch = {0};
    lines_t lines = {0};
    int64_t last = 0;
    int seen = 0, failed = 0; /* failed: 1 out of memory, 2 Python error, 3 SQLite error */
    size_t *field_start = malloc(sizeof(size_t) * (size_t)(ncols + 1));
    if (!field_start) failed = 1;

    PyThreadState *ts = PyEval_SaveThread();
    while (!failed && seen < batch) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            failed = 3;
            break;
        }
        seen++;
        last = sqlite3_column_int64(st, (int)ncols);
        size_t line_start = b.len;
        int ok = 1;
        for (Py_ssize_t i = 0; ok && i < ncols; i++) {
            if (i && !buf_put(&b, "\t", 1)) {
                failed = 1;
                break;
            }
            field_start[i] = b.len;
            if (sqlite3_column_type(st, (int)i) == SQLITE_NULL) {
                if (not_null[i]) ok = 0;
                else if (!buf_put(&b, "\\N", 2)) failed = 1;
                continue;
            }
            ok = put_value(&b, &scratch, st, (int)i, kinds[i], limits[i]);
        }
        if (failed) break;
        if (!ok) {
            b.len = line_start;
            PyEval_RestoreThread(ts);
            PyObject *row = row_tuple(st, (int)ncols + 1);
            if (!row || PyList_Append(fallback, row) < 0) failed = 2;
            Py_XDECREF(row);
            ts = PyEval_SaveThread();
            continue;
        }
        const unsigned char *line = b.p + line_start;
        size_t len = b.len - line_start;
        int64_t hash = hashed ? md5_head(line, len) : 0;
        unsigned char old = 0;
        if (pidx >= 0 && nranges) {
            /* ArchiveRouter.archived: bisect the starts, then below that range's end */
            const unsigned char *key = b.p + field_start[pidx];
            size_t field_end = pidx + 1 < ncols ? field_start[pidx + 1] - 1 : b.len;
            size_t key_len = field_end - field_start[pidx];
            if ((Py_ssize_t)key_len > width) key_len = (size_t)width;
            Py_ssize_t lo = 0, hi = nranges;
            while (lo < hi) {
                Py_ssize_t mid = (lo + hi) / 2;
                PyObject *s = PyList_GET_ITEM(starts, mid);
                if (bytes_cmp(key, key_len, (const unsigned char *)PyBytes_AS_STRING(s),
                              (size_t)PyBytes_GET_SIZE(s)) < 0)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (lo > 0) {
                PyObject *e = PyList_GET_ITEM(ends, lo - 1);
                old = bytes_cmp(key, key_len, (const unsigned char *)PyBytes_AS_STRING(e),
                                (size_t)PyBytes_GET_SIZE(e)) < 0;
            }
        }
        if (!lines_add(&lines, b.len, last, hash, old)) failed = 1;
    }
    PyEval_RestoreThread(ts);
    free(field_start);
    free(scratch.p);

    PyObject *result = NULL;
    if (failed == 1) {
        PyErr_NoMemory();
    } else if (failed == 3) {
        raise_sqlite(self, rc);
    } else if (failed == 0) {
        PyObject *out[2][3] = {{PyList_New(0), PyList_New(0), PyList_New(0)},
                               {PyList_New(0), PyList_New(0), PyList_New(0)}};
        int ok = 1;
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 3; k++) ok = ok && out[r][k];
        size_t start = 0;
        for (size_t i = 0; ok && i < lines.count; i++) {
            int r = lines.archived[i];
            size_t end = lines.ends[i];
            /* the line ends before the next line starts: lines are back to back */
            PyObject *line = PyBytes_FromStringAndSize((const char *)b.p + start,
                                                       (Py_ssize_t)(end - start));
            PyObject *rowid = PyLong_FromLongLong(lines.rowids[i]);
            ok = line && rowid && PyList_Append(out[r][0], line) == 0 &&
                 PyList_Append(out[r][1], rowid) == 0;
            Py_XDECREF(line);
            Py_XDECREF(rowid);
            if (ok && hashed) {
                PyObject *hash = PyLong_FromLongLong(lines.hashes[i]);
                ok = hash && PyList_Append(out[r][2], hash) == 0;
                Py_XDECREF(hash);
            }
            start = end;
        }
        if (ok) {
            PyObject *last_obj = seen ? PyLong_FromLongLong(last) : Py_NewRef(Py_None);
            if (last_obj)
                result = Py_BuildValue("((NNN)(NNN)ON)", out[0][0], out[0][1], out[0][2],
                                       out[1][0], out[1][1], out[1][2], fallback, last_obj);
            else
                for (int r = 0; r < 2; r++)
                    for (int k = 0; k < 3; k++) Py_XDECREF(out[r][k]);
        } else {
            for (int r = 0; r < 2; r++)
                for (int k = 0; k < 3; k++) Py_XDECREF(out[r][k]);
        }
    }
    Py_DECREF(fallback);
    free(b.p);
    free(lines.ends);
    free(lines.rowids);
    free(lines.hashes);
    free(lines.archived);
    return result;
}

static PyObject *md5_head_py(PyObject *Py_UNUSED(module), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int64_t v = md5_head(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(v);
}

/* A timestamp field as PostgreSQL prints it (`YYYY-MM-DD HH:MM:SS[.f{1,6}]`, then `+00` for
 * timestamptz, the session being in UTC) written as the converters write it, with all six
 * fractional digits; 0 (nothing written) for a field of another shape, hashed as it is. */
static int put_stamp_field(buf_t *b, const unsigned char *f, size_t n, int tz) {
    static const int digits[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    if (tz) {
        if (n < 22 || memcmp(f + n - 3, "+00", 3) != 0) return 0;
        n -= 3;
    }
    if (n < 19 || f[4] != '-' || f[7] != '-' || f[10] != ' ' || f[13] != ':' || f[16] != ':')
        return 0;
    for (size_t k = 0; k < sizeof digits / sizeof digits[0]; k++)
        if (!is_digit(f[digits[k]])) return 0;
    size_t frac = 0;
    if (n > 19) {
        if (f[19] != '.' || n == 20 || n > 26) return 0;
        for (size_t k = 20; k < n; k++)
            if (!is_digit(f[k])) return 0;
        frac = n - 20;
    }
    if (!buf_reserve(b, 32)) return 0;
    memcpy(b->p + b->len, f, 19);
    b->p[b->len + 19] = '.';
    memcpy(b->p + b->len + 20, f + 20, frac);
    memset(b->p + b->len + 20 + frac, '0', 6 - frac);
    b->len += 26;
    if (tz) memcpy(b->p + b->len, "+00", 3), b->len += 3;
    return 1;
}

/* digest_lines(lines, stamps=b"") -> (count, sum): row digests of lines as COPY TO sends them
 * (each ends with a newline, which is not hashed), summed as Python ints are (wrapping is done
 * by the caller's arithmetic: the sum is returned exactly, in a Python int). `stamps` has a
 * byte per column: 1 for timestamptz, 2 for timestamp, whose fields are hashed as the
 * converters write them (put_stamp_field), 0 for the others. */
static PyObject *digest_lines_py(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *seq;
    const char *stamps = "";
    Py_ssize_t nstamps = 0;
    if (!PyArg_ParseTuple(args, "O|y#", &seq, &stamps, &nstamps)) return NULL;
    int any = 0;
    for (Py_ssize_t i = 0; i < nstamps; i++) any |= stamps[i];
    PyObject *fast = PySequence_Fast(seq, "digest_lines takes a sequence of buffers");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    buf_t norm = {0};
    /* 128-bit sum of signed 64-bit digests: exact for any count that fits in memory */
    __int128 total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(items[i], &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(fast);
            free(norm.p);
            return NULL;
        }
        size_t len = (size_t)view.len;
        const unsigned char *p = view.buf;
        if (len && p[len - 1] == '\n') len--;
        if (any) {
            norm.len = 0;
            size_t start = 0;
            int ok = 1;
            for (Py_ssize_t col = 0; ok; col++) {
                const unsigned char *tab = memchr(p + start, '\t', len - start);
                size_t end = tab ? (size_t)(tab - p) : len;
                int kind = col < nstamps ? stamps[col] : 0;
                if (col) ok = buf_put(&norm, "\t", 1);
                if (ok && !(kind && put_stamp_field(&norm, p + start, end - start, kind == 1)))
                    ok = buf_put(&norm, p + start, end - start);
                if (!tab) break;
                start = end + 1;
            }
            if (!ok) {
                PyBuffer_Release(&view);
                Py_DECREF(fast);
                free(norm.p);
                return PyErr_NoMemory();
            }
            total += md5_head(norm.p, norm.len);
        } else {
            total += md5_head(p, len);
        }
        PyBuffer_Release(&view);
    }
    Py_DECREF(fast);
    free(norm.p);
    /* as a Python int: high and low 64 bits */
    int64_t high = (int64_t)(total >> 64);
    uint64_t low = (uint64_t)total;
    PyObject *h = PyLong_FromLongLong(high), *l = PyLong_FromUnsignedLongLong(low);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *result = NULL;
    if (h && l && shift) {
        PyObject *shifted = PyNumber_Lshift(h, shift);
        if (shifted) {
            PyObject *sum = PyNumber_Add(shifted, l);
            Py_DECREF(shifted);
            if (sum) result = Py_BuildValue("(nN)", n, sum);
        }
    }
    Py_XDECREF(h);
    Py_XDECREF(l);
    Py_XDECREF(shift);
    return result;
}

/* The hour of a naive `YYYY-MM-DD HH:MM:SS` (or with T) as put_naive_iso accepts it, as
 * YYYYMMDDHH; -1 for any other value. */
static long long naive_hour(const unsigned char *s, size_t n) {
    buf_t scratch = {0};
    unsigned char room[32];
    scratch.p = room;
    scratch.cap = sizeof room;
    /* put_naive_iso validates before it writes, and its 32 bytes fit in `room` */
    if (!put_naive_iso(&scratch, s, n, 0)) return -1;
    return ((long long)(two(s) * 100 + two(s + 2)) * 1000000LL) + two(s + 5) * 10000LL +
           two(s + 8) * 100LL + two(s + 11);
}

static int hours_add(PyObject *counts, long long key, long long n) {
    PyObject *k = PyLong_FromLongLong(key);
    if (!k) return 0;
    PyObject *old = PyDict_GetItemWithError(counts, k);
    long long total = n;
    if (old) total += PyLong_AsLongLong(old);
    else if (PyErr_Occurred()) {
        Py_DECREF(k);
        return 0;
    }
    PyObject *v = PyLong_FromLongLong(total);
    int ok = v && PyDict_SetItem(counts, k, v) == 0;
    Py_XDECREF(v);
    Py_DECREF(k);
    return ok;
}

/* hours(sql, other) -> {YYYYMMDDHH: rows}: the statement selects one column; each naive ISO
 * text is counted under its hour here, every other value goes to `other` (TEXT as bytes, as
 * SqliteSource.visit_values passes it). Runs of one hour are counted in C, so a file in time
 * order costs one dictionary update per hour. */
static PyObject *Reader_hours(Reader *self, PyObject *args) {
    const char *sql;
    PyObject *other;
    if (!PyArg_ParseTuple(args, "sO", &sql, &other)) return NULL;
    if (!self->db || self->close_pending || self->busy) {
        PyErr_SetString(PyExc_ValueError, "the reader is closed or busy");
        return NULL;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(self->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return raise_sqlite(self, rc);
    PyObject *counts = PyDict_New();
    long long run_key = -1, run_rows = 0;
    int failed = !counts;
    self->busy = 1;
    while (!failed) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            failed = 3;
            break;
        }
        int type = sqlite3_column_type(st, 0);
        if (type == SQLITE_TEXT) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            long long key = t ? naive_hour(t, n) : -1;
            if (key >= 0) {
                if (key != run_key) {
                    if (run_rows && !hours_add(counts, run_key, run_rows)) failed = 2;
                    run_key = key;
                    run_rows = 0;
                }
                run_rows++;
                continue;
            }
        }
        PyObject *v;
        switch (type) {
        case SQLITE_NULL: continue;
        case SQLITE_INTEGER: v = PyLong_FromLongLong(sqlite3_column_int64(st, 0)); break;
        case SQLITE_FLOAT: v = PyFloat_FromDouble(sqlite3_column_double(st, 0)); break;
        default: {
            const char *b = sqlite3_column_blob(st, 0);
            v = PyBytes_FromStringAndSize(b ? b : "", sqlite3_column_bytes(st, 0));
        }
        }
        PyObject *r = v ? PyObject_CallOneArg(other, v) : NULL;
        Py_XDECREF(v);
        if (!r) failed = 2;
        Py_XDECREF(r);
    }
    if (!failed && run_rows && !hours_add(counts, run_key, run_rows)) failed = 2;
    sqlite3_finalize(st);
    self->busy = 0;
    if (self->close_pending) Reader_close_db(self);
    if (failed == 3) raise_sqlite(self, rc);
    if (failed) {
        Py_XDECREF(counts);
        return NULL;
    }
    return counts;
}

static PyMethodDef Reader_methods[] = {
    {"convert", (PyCFunction)Reader_convert, METH_VARARGS, "Convert up to `batch` rows."},
    {"hours", (PyCFunction)Reader_hours, METH_VARARGS, "Rows per hour of naive ISO times."},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "Close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lokifi_storage.clients._sqlite_copy.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
    .tp_doc = "A read-only connection to a SQLite file, inside one read transaction.",
};

static PyMethodDef module_methods[] = {
    {"md5_head", md5_head_py, METH_O, "The row digest of a line (first 64 bits of md5)."},
    {"digest_lines", digest_lines_py, METH_VARARGS,
     "Count and summed row digests of COPY TO lines."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_sqlite_copy", "Compiled conversion of SQLite rows to COPY lines.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sqlite_copy(void) {
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    PyErr_SetString(PyExc_ImportError, "the compiled SQLite reader needs a little-endian CPU");
    return NULL;
#endif
    copy_letter_init();
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    SqliteError = PyErr_NewException("lokifi_storage.clients._sqlite_copy.Error", NULL, NULL);
    if (!SqliteError || PyModule_AddObjectRef(m, "Error", SqliteError) < 0 ||
        PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
