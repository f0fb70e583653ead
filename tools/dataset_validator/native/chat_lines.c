/* The chat lane's native core: which JSON Lines of a batch are well-formed chat, and what the
 * scan needs of each. chat_lane.py is its only caller and documents the contract; every rule
 * and constant comes from there as an argument, so the Python definitions stay the only ones.
 *
 * A line is parsed by yyjson (the parser orjson itself uses, with the same strictness: UTF-8,
 * escapes, numbers; orjson's nesting limit is checked here). It is taken when its last
 * "messages" member is a non-empty array of objects whose last "role" is a known name and last
 * "content" a string that is not blank in Python's sense (str.isspace), in an allowed turn
 * order, with the required role. Any other line is left to the record path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "vendor/yyjson.h"
#define XXH_INLINE_ALL
#include "vendor/xxhash.h"

typedef struct {
    char *data;
    size_t len, cap;
} Buffer;

static int grow(Buffer *buf, size_t more) {
    if (buf->len + more <= buf->cap) return 1;
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < buf->len + more) cap *= 2;
    char *data = PyMem_RawRealloc(buf->data, cap);
    if (!data) return 0;
    buf->data = data;
    buf->cap = cap;
    return 1;
}

static int put(Buffer *buf, const void *src, size_t n) {
    if (!grow(buf, n)) return 0;
    memcpy(buf->data + buf->len, src, n);
    buf->len += n;
    return 1;
}

/* Whether a container nests deeper than `limit` (the root is at depth 1). */
static int too_deep(yyjson_val *val, size_t depth, size_t limit) {
    if (!yyjson_is_ctn(val)) return 0;
    if (depth > limit) return 1;
    yyjson_val *child;
    if (yyjson_is_arr(val)) {
        yyjson_arr_iter it = yyjson_arr_iter_with(val);
        while ((child = yyjson_arr_iter_next(&it)))
            if (too_deep(child, depth + 1, limit)) return 1;
    } else {
        yyjson_obj_iter it = yyjson_obj_iter_with(val);
        while ((child = yyjson_obj_iter_next(&it)))  /* a key; its value follows */
            if (too_deep(yyjson_obj_iter_get_val(child), depth + 1, limit)) return 1;
    }
    return 0;
}

/* An object's value for `key`, the last one when the key repeats (as a Python dict keeps it). */
static yyjson_val *last_member(yyjson_val *obj, const char *key, size_t len) {
    yyjson_val *found = NULL, *name;
    yyjson_obj_iter it = yyjson_obj_iter_with(obj);
    while ((name = yyjson_obj_iter_next(&it)))
        if (yyjson_equals_strn(name, key, len)) found = yyjson_obj_iter_get_val(name);
    return found;
}

/* Whether valid UTF-8 text is all whitespace to str.isspace (the empty text too). */
static int blank(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        Py_UCS4 c = s[i];
        if (c < 0x80) {
            i += 1;
        } else if (c < 0xE0) {
            c = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
        } else if (c < 0xF0) {
            c = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            i += 3;
        } else {
            c = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
                (s[i + 3] & 0x3F);
            i += 4;
        }
        if (!Py_UNICODE_ISSPACE(c)) return 0;
    }
    return 1;
}

/* The number of code points in valid UTF-8: every byte but a continuation (10xxxxxx) starts
 * one. Eight bytes at a time: a continuation has bit 7 set and bit 6 clear. */
static size_t code_points(const unsigned char *s, size_t n) {
    const uint64_t high = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
    size_t continuations = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, sizeof word);
        uint64_t marks = word & ~(word << 1) & high;  /* bit 7 of each continuation byte */
        continuations += (size_t)(((marks >> 7) * ones) >> 56);  /* the marks, summed */
    }
    for (; i < n; i++) continuations += (s[i] & 0xC0) == 0x80;
    return n - continuations;
}

/* Copies the bytes `keep` marks, branch-free; returns how many. */
static size_t strip_copy(char *into, const unsigned char *s, size_t n, const unsigned char *keep) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        into[kept] = (char)s[i];
        kept += keep[s[i]];
    }
    return kept;
}

static int contains(const char *s, size_t n, const char *part, size_t k) {
    if (k == 0) return 1;
    const char *end = s + n;
    while ((size_t)(end - s) >= k) {
        const char *at = memchr(s, part[0], (size_t)(end - s) - k + 1);
        if (!at) return 0;
        if (memcmp(at, part, k) == 0) return 1;
        s = at + 1;
    }
    return 0;
}

typedef struct {
    const char *text;
    size_t len;
    char letter;
} Name;

typedef struct {
    Name *names;                /* the role names the config accepts, with their tag letters */
    Py_ssize_t name_count;
    unsigned char allowed[256][256];  /* [previous letter][letter]: 1 where the order allows */
    unsigned char keep[256];    /* 0 for a byte the digest leaves out, else 1 */
    char separator, required, start;
    const char *literal;
    Py_ssize_t literal_len;
    uint64_t seed;
    size_t max_depth;
} Rules;

/* The tag letter of a role name, or 0 for a name the config does not accept. */
static char role(const Rules *rules, yyjson_val *name) {
    const char *s = yyjson_get_str(name);
    size_t n = yyjson_get_len(name);
    for (Py_ssize_t i = 0; i < rules->name_count; i++) {
        const Name *known = &rules->names[i];
        if (known->len == n && memcmp(known->text, s, n) == 0) return known->letter;
    }
    return 0;
}

typedef struct {
    Buffer rows, tags, turns, digests, chars, candidates, text;
} Out;

/* One parsed line: 1 if taken (its results appended to out), 0 if not, -1 on no memory. */
static int take(const Rules *rules, yyjson_doc *doc, Py_ssize_t position, Out *out) {
    yyjson_val *root = yyjson_doc_get_root(doc);
    if (!yyjson_is_obj(root)) return 0;
    if (yyjson_doc_get_val_count(doc) > rules->max_depth && too_deep(root, 1, rules->max_depth))
        return 0;
    yyjson_val *messages = last_member(root, "messages", 8);
    if (!yyjson_is_arr(messages) || yyjson_arr_size(messages) == 0) return 0;
    size_t tags_at = out->tags.len, chars_at = out->chars.len;
    int64_t turns = 0;
    char previous = rules->start;
    int required = 0, candidate = rules->literal_len == 0;
    out->text.len = 0;
    yyjson_val *message;
    yyjson_arr_iter it = yyjson_arr_iter_with(messages);
    while ((message = yyjson_arr_iter_next(&it))) {
        if (!yyjson_is_obj(message)) goto refuse;
        yyjson_val *name = last_member(message, "role", 4);
        yyjson_val *content = last_member(message, "content", 7);
        if (!yyjson_is_str(name) || !yyjson_is_str(content)) goto refuse;
        char letter = role(rules, name);
        if (!letter || !rules->allowed[(unsigned char)previous][(unsigned char)letter])
            goto refuse;
        const unsigned char *s = (const unsigned char *)yyjson_get_str(content);
        size_t n = yyjson_get_len(content);
        if (blank(s, n)) goto refuse;
        if (turns && !put(&out->text, &rules->separator, 1)) return -1;
        if (!grow(&out->text, n)) return -1;
        out->text.len += strip_copy(out->text.data + out->text.len, s, n, rules->keep);
        int64_t chars = (int64_t)code_points(s, n);
        if (!candidate)
            candidate = contains((const char *)s, n, rules->literal, (size_t)rules->literal_len);
        if (!put(&out->tags, &letter, 1) || !put(&out->chars, &chars, sizeof chars)) return -1;
        required |= letter == rules->required;
        previous = letter;
        turns++;
    }
    if (!required) goto refuse;
    XXH64_hash_t seed = XXH3_64bits_withSeed(out->tags.data + tags_at, (size_t)turns, rules->seed);
    XXH128_canonical_t digest;
    XXH128_canonicalFromHash(&digest, XXH3_128bits_withSeed(out->text.data, out->text.len, seed));
    int64_t row = position;
    char flag = (char)candidate;
    if (!put(&out->rows, &row, sizeof row) || !put(&out->turns, &turns, sizeof turns) ||
        !put(&out->digests, &digest, sizeof digest) || !put(&out->candidates, &flag, 1))
        return -1;
    return 1;
refuse:
    out->tags.len = tags_at;
    out->chars.len = chars_at;
    return 0;
}

static int single_byte(PyObject *value, const char *what, char *into) {
    if (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be one byte", what);
        return 0;
    }
    *into = PyBytes_AS_STRING(value)[0];
    return 1;
}

static PyObject *as_bytes(Out *out) {
    Buffer *parts[] = {&out->rows, &out->tags, &out->turns,
                       &out->digests, &out->chars, &out->candidates};
    PyObject *result = PyTuple_New(6);
    for (Py_ssize_t i = 0; result && i < 6; i++) {
        PyObject *part = PyBytes_FromStringAndSize(parts[i]->data ? parts[i]->data : "",
                                                   (Py_ssize_t)parts[i]->len);
        if (!part) Py_CLEAR(result);
        else PyTuple_SET_ITEM(result, i, part);
    }
    return result;
}

static PyObject *scan(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *items, *names, *letters, *allowed, *strip, *separator, *required, *start;
    const char *literal;
    Py_ssize_t literal_len, max_depth;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "O!O!SSSSSSKy#n", &PyList_Type, &items, &PyTuple_Type, &names,
                          &letters, &allowed, &strip, &separator, &required, &start, &seed,
                          &literal, &literal_len, &max_depth))
        return NULL;
    Rules rules;
    memset(&rules, 0, sizeof rules);
    rules.name_count = PyTuple_GET_SIZE(names);
    if (PyBytes_GET_SIZE(letters) != rules.name_count) {
        PyErr_SetString(PyExc_ValueError, "one letter per role name");
        return NULL;
    }
    const unsigned char *pairs = (const unsigned char *)PyBytes_AS_STRING(allowed);
    for (Py_ssize_t i = 0; i + 1 < PyBytes_GET_SIZE(allowed); i += 2)
        rules.allowed[pairs[i]][pairs[i + 1]] = 1;
    memset(rules.keep, 1, sizeof rules.keep);
    const unsigned char *left_out = (const unsigned char *)PyBytes_AS_STRING(strip);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(strip); i++) rules.keep[left_out[i]] = 0;
    if (!single_byte(separator, "separator", &rules.separator) ||
        !single_byte(required, "required", &rules.required) ||
        !single_byte(start, "start", &rules.start))
        return NULL;
    rules.seed = (uint64_t)seed;
    rules.literal = literal;
    rules.literal_len = literal_len;
    rules.max_depth = max_depth > 0 ? (size_t)max_depth : 0;

    /* What the loop reads, pinned first: it runs without the GIL. */
    PyObject *pinned = PySequence_Tuple(items);
    Py_ssize_t size = pinned ? PyTuple_GET_SIZE(pinned) : 0;
    const char **lines = PyMem_RawCalloc((size_t)size + 1, sizeof *lines);
    size_t *lengths = PyMem_RawCalloc((size_t)size + 1, sizeof *lengths);
    rules.names = PyMem_RawCalloc((size_t)rules.name_count + 1, sizeof *rules.names);
    yyjson_alc *alc = yyjson_alc_dyn_new();
    Out out;
    memset(&out, 0, sizeof out);
    PyObject *result = NULL;
    if (!pinned) goto done;
    if (!lines || !lengths || !rules.names || !alc) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < rules.name_count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "role names must be bytes");
            goto done;
        }
        rules.names[i] = (Name){PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name),
                                PyBytes_AS_STRING(letters)[i]};
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *item = PyTuple_GET_ITEM(pinned, i);
        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
            PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {  /* else a line that could not be read */
            lines[i] = PyBytes_AS_STRING(PyTuple_GET_ITEM(item, 1));
            lengths[i] = (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
        }
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < size && !failed; i++) {
        if (!lines[i]) continue;
        yyjson_doc *doc =
            yyjson_read_opts((char *)lines[i], lengths[i], YYJSON_READ_NOFLAG, alc, NULL);
        if (!doc) continue;
        failed = take(&rules, doc, i, &out) < 0;
        yyjson_doc_free(doc);
    }
    Py_END_ALLOW_THREADS
    if (failed) PyErr_NoMemory();
    else result = as_bytes(&out);
done:
    if (alc) yyjson_alc_dyn_free(alc);
    Buffer *buffers[] = {&out.rows, &out.tags,       &out.turns, &out.digests,
                         &out.chars, &out.candidates, &out.text};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) PyMem_RawFree(buffers[i]->data);
    PyMem_RawFree(rules.names);
    PyMem_RawFree(lines);
    PyMem_RawFree(lengths);
    Py_XDECREF(pinned);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(items, names, letters, allowed, strip, separator, required, start, seed, literal, "
     "max_depth) -> (rows, tags, turns, digests, chars, candidates); see chat_lane.py"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_chat_lines", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__chat_lines(void) { return PyModule_Create(&module); }
