/* The per-frame arithmetic of callbridge.core.g711, in C.
 *
 * Two functions, one per direction, each a streaming polyphase FIR fused with G.711 mu-law:
 *
 *   encode(taps, factor, phase, history, pcm) -> mu-law bytes
 *       PCM16 at the ACS rate -> low-pass and keep every factor-th sample -> mu-law at 8 kHz.
 *   decode(sub_filters, factor, history, ulaw) -> PCM16 bytes
 *       mu-law at 8 kHz -> PCM16 -> one output per sub-filter per input -> the ACS rate.
 *
 * The filters are designed in Python (g711.py) and passed in as float32 buffers; the stream's
 * history (the last samples in, as PCM16) is a bytearray the caller owns and these functions
 * update in place. Both directions share one filter loop (``filter``), which keeps sixteen
 * outputs in registers across the taps, and each output sums its taps in the same order however
 * the stream is cut into chunks: streaming and one-shot results are identical.
 *
 * Done in numpy, the same work took about 7 us per 20 ms frame each way, nearly all of it
 * numpy's per-call overhead on arrays of a few hundred samples (benchmarks/codec_bench.py).
 *
 * Mu-law is G.711's: the 14-bit magnitude, biased by 33 and split into a segment and four
 * mantissa bits, all bits inverted. tests/test_g711_extension.py checks both directions against
 * Python's audioop for every value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define ULAW_BIAS 0x84
#define ULAW_CLIP 8159 /* the largest 14-bit magnitude mu-law codes */

static short ulaw_to_linear[256];
static unsigned char ulaw_of_14bit[1 << 14]; /* indexed by the sample's top 14 bits, + 2^13 */

static void
fill_ulaw_table(void)
{
    for (int code = 0; code < 256; code++) {
        int u = ~code & 0xFF;
        int t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
        ulaw_to_linear[code] = (short)((u & 0x80) ? (ULAW_BIAS - t) : (t - ULAW_BIAS));
    }
}

static unsigned char
compand(int sample)
{
    int magnitude = sample >> 2; /* 14 bits */
    int mask = 0xFF;
    if (magnitude < 0) {
        magnitude = -magnitude;
        mask = 0x7F;
    }
    if (magnitude > ULAW_CLIP)
        magnitude = ULAW_CLIP;
    magnitude += ULAW_BIAS >> 2;
    int segment = 0;
    while (segment < 8 && magnitude >= (0x40 << segment))
        segment++;
    if (segment >= 8)
        return (unsigned char)(0x7F ^ mask);
    return (unsigned char)(((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask);
}

static void
fill_compand_table(void)
{
    for (int top = 0; top < (1 << 14); top++)
        ulaw_of_14bit[top] = compand((top - (1 << 13)) * 4);
}

/* A table, not the segment search per sample: the search cost more than the filter. */
static unsigned char
linear_to_ulaw(int sample)
{
    return ulaw_of_14bit[(sample >> 2) + (1 << 13)];
}

/* Round to the nearest PCM16 value (ties to even), clipping what is out of range, without a
 * branch on the sign or a library call per sample: either cost more than the filter, for audio
 * is positive and negative at random. Adding 1.5 * 2^23 to a float of magnitude under 2^22
 * leaves no bits below the units, so the format itself rounds; that needs arithmetic in float,
 * not in a wider format (FLT_EVAL_METHOD 0: any SSE or ARM target). */
static int
saturate(float value)
{
    value = value < 32767.0f ? value : 32767.0f;
    value = value > -32768.0f ? value : -32768.0f;
#if FLT_EVAL_METHOD == 0
    return (int)((value + 12582912.0f) - 12582912.0f);
#else
    return (int)lrintf(value);
#endif
}

/* PCM16 samples are little-endian on the wire, whatever the machine's byte order; memcpy, as
 * a buffer's samples need not be aligned. */
static int
pcm_at(const unsigned char *bytes, Py_ssize_t index)
{
#if PY_LITTLE_ENDIAN
    short sample;
    memcpy(&sample, bytes + 2 * index, sizeof sample);
    return sample;
#else
    return (short)(bytes[2 * index] | (bytes[2 * index + 1] << 8));
#endif
}

static void
pcm_put(unsigned char *bytes, Py_ssize_t index, int sample)
{
#if PY_LITTLE_ENDIAN
    short value = (short)sample;
    memcpy(bytes + 2 * index, &value, sizeof value);
#else
    bytes[2 * index] = (unsigned char)(sample & 0xFF);
    bytes[2 * index + 1] = (unsigned char)((sample >> 8) & 0xFF);
#endif
}

/* Keep the last len(history) samples of history + new (both PCM16, new of count samples). */
static void
slide_history(unsigned char *history, Py_ssize_t kept, const unsigned char *new_pcm,
              Py_ssize_t count)
{
    if (count >= kept) {
        memcpy(history, new_pcm + 2 * (count - kept), (size_t)(2 * kept));
    }
    else {
        memmove(history, history + 2 * count, (size_t)(2 * (kept - count)));
        memcpy(history + 2 * (kept - count), new_pcm, (size_t)(2 * count));
    }
}

#define MAX_TAPS 128
#define BLOCK 16

/* sums[k] = the sum over taps j of taps[j] * inputs[j][k], for k < count. Sixteen outputs at a
 * time stay in registers across all the taps; every output adds its taps in the same order
 * (j = 0, 1, ...), in the blocks and in the remainder alike, so an output does not depend on
 * where the stream was cut into chunks. */
static void
filter(const float *taps, const float *const *inputs, Py_ssize_t ntaps, Py_ssize_t count,
       float *sums)
{
    Py_ssize_t k = 0;
    for (; k + BLOCK <= count; k += BLOCK) {
        float acc[BLOCK] = {0.0f};
        for (Py_ssize_t j = 0; j < ntaps; j++) {
            const float tap = taps[j];
            const float *x = inputs[j] + k;
            for (int u = 0; u < BLOCK; u++)
                acc[u] += tap * x[u];
        }
        memcpy(sums + k, acc, sizeof acc);
    }
    for (; k < count; k++) {
        float acc = 0.0f;
        for (Py_ssize_t j = 0; j < ntaps; j++)
            acc += taps[j] * inputs[j][k];
        sums[k] = acc;
    }
}

static int
check_buffers(const Py_buffer *taps, const Py_buffer *history, long factor)
{
    Py_ssize_t ntaps = taps->len / (Py_ssize_t)sizeof(float);
    if (factor < 1 || ntaps < 1 || ntaps > MAX_TAPS || taps->len % (Py_ssize_t)sizeof(float)
        || history->len % 2) {
        PyErr_SetString(PyExc_ValueError, "bad filter: factor, taps or history size");
        return -1;
    }
    return 0;
}

/* encode(taps, factor, phase, history, pcm): output k is the filter over the input ending at
 * sample phase + factor * k of pcm (history before it); len(history) is len(taps) - 1. */
static PyObject *
encode(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer taps, history, pcm;
    long factor, phase;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*llw*y*", &taps, &factor, &phase, &history, &pcm))
        return NULL;
    const float *h = (const float *)taps.buf;
    Py_ssize_t ntaps = taps.len / (Py_ssize_t)sizeof(float);
    Py_ssize_t kept = history.len / 2, count = pcm.len / 2;
    float *work = NULL;
    if (check_buffers(&taps, &history, factor) < 0)
        goto done;
    if (kept != ntaps - 1 || phase < 0 || phase >= factor || pcm.len % 2) {
        PyErr_SetString(PyExc_ValueError, "encode: history, phase or PCM out of shape");
        goto done;
    }
    Py_ssize_t outputs = count > phase ? (count - phase + factor - 1) / factor : 0;
    result = PyBytes_FromStringAndSize(NULL, outputs);
    if (result == NULL || outputs == 0)
        goto slide;
    /* The samples, history first, dealt into factor rows: row r holds samples r, r + factor,
     * ... so that each tap reads its outputs' inputs contiguously. */
    Py_ssize_t total = kept + count, row = (total + factor - 1) / factor;
    work = PyMem_Malloc(sizeof(float) * (size_t)(factor * row + outputs));
    if (work == NULL) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    const unsigned char *old = history.buf, *in = pcm.buf;
    for (long r = 0; r < factor; r++) {
        float *dealt = work + r * row;
        Py_ssize_t m = 0, i = r;
        for (; i < kept; i += factor)
            dealt[m++] = (float)pcm_at(old, i);
        for (; i < total; i += factor)
            dealt[m++] = (float)pcm_at(in, i - kept);
    }
    const float *inputs[MAX_TAPS];
    for (Py_ssize_t j = 0; j < ntaps; j++) {
        Py_ssize_t newest = kept + phase - j; /* input read by output 0 for tap j */
        inputs[j] = work + (newest % factor) * row + newest / factor;
    }
    float *sums = work + factor * row;
    filter(h, inputs, ntaps, outputs, sums);
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    for (Py_ssize_t k = 0; k < outputs; k++)
        out[k] = linear_to_ulaw(saturate(sums[k]));
slide:
    if (result != NULL)
        slide_history(history.buf, kept, pcm.buf, count);
done:
    PyMem_Free(work);
    PyBuffer_Release(&taps);
    PyBuffer_Release(&history);
    PyBuffer_Release(&pcm);
    return result;
}

/* decode(sub_filters, factor, history, ulaw): sub_filters holds factor rows of equal length,
 * row p's tap j for the input j samples back; each input i yields outputs i * factor + p. */
static PyObject *
decode(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer taps, history, ulaw;
    long factor;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*lw*y*", &taps, &factor, &history, &ulaw))
        return NULL;
    Py_ssize_t ntaps = taps.len / (Py_ssize_t)sizeof(float);
    Py_ssize_t kept = history.len / 2, count = ulaw.len;
    float *work = NULL;
    if (check_buffers(&taps, &history, factor) < 0)
        goto done;
    Py_ssize_t per_phase = ntaps / factor;
    if (ntaps % factor || kept != per_phase - 1) {
        PyErr_SetString(PyExc_ValueError, "decode: sub-filters or history out of shape");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, 2 * factor * count);
    if (result == NULL || count == 0)
        goto done;
    Py_ssize_t total = kept + count;
    work = PyMem_Malloc(sizeof(float) * (size_t)(total + count));
    if (work == NULL) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    unsigned char *old = history.buf;
    const unsigned char *codes = ulaw.buf;
    for (Py_ssize_t i = 0; i < kept; i++)
        work[i] = (float)pcm_at(old, i);
    for (Py_ssize_t i = 0; i < count; i++)
        work[kept + i] = (float)ulaw_to_linear[codes[i]];
    const float *h = (const float *)taps.buf;
    float *sums = work + total;
    const float *inputs[MAX_TAPS];
    for (Py_ssize_t j = 0; j < per_phase; j++)
        inputs[j] = work + kept - j; /* input i's sample j back */
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    for (long p = 0; p < factor; p++) {
        filter(h + p * per_phase, inputs, per_phase, count, sums);
        for (Py_ssize_t i = 0; i < count; i++)
            pcm_put(out, i * factor + p, saturate(sums[i]));
    }
    /* The new history: the last kept inputs, as exact PCM16 (mu-law expands to integers). */
    for (Py_ssize_t i = 0; i < kept; i++)
        pcm_put(old, i, (int)work[count + i]);
done:
    PyMem_Free(work);
    PyBuffer_Release(&taps);
    PyBuffer_Release(&history);
    PyBuffer_Release(&ulaw);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(taps, factor, phase, history, pcm) -> bytes: PCM16 to 8 kHz mu-law."},
    {"decode", decode, METH_VARARGS,
     "decode(sub_filters, factor, history, ulaw) -> bytes: 8 kHz mu-law to PCM16."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "callbridge.core._g711",
    .m_doc = "Streaming polyphase FIR resampling fused with G.711 mu-law (see g711.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__g711(void)
{
    fill_ulaw_table();
    fill_compand_table();
    return PyModuleDef_Init(&module_def);
}
