/*
 * repo-butler PSF-matching loops (mask dilation, tile gather, spectrum products, the per-pixel
 * combination of the spatially varying convolution) and the warped-PSF Lanczos resampler.
 *
 * Plain C99, compiled into the same shared library as the warping core (warping/warp/_clib.py)
 * and called through ctypes without the GIL.  Arrays are passed as base pointers plus row
 * strides in elements; the innermost axis is always contiguous (the Python wrappers check).
 * Element types are fixed per function name: masks int32, complex spectra as interleaved
 * (re, im) pairs, "f32"/"f64" suffixes for the real types.
 *
 * Loops that must vectorise (dilation, products, sums, the combination) are compiled twice, for
 * AVX2+FMA and for the baseline, and the first call picks one from the CPU's features.  No
 * fast-math: NaN and infinity keep their meaning; multiply-adds may be fused (-ffp-contract),
 * so the two variants can differ in the last bit.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PM_HAVE_AVX2 1
#define PM_AVX2 __attribute__((target("avx2,fma")))
/* 1 when the CPU has AVX2 and FMA (checked once). */
static int pm_avx2(void) {
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return have;
}
#endif

#ifdef PM_HAVE_AVX2
#define PM_DISPATCH(BASE, AVX, ARGS)                                                              \
    do {                                                                                         \
        if (pm_avx2())                                                                           \
            AVX ARGS;                                                                            \
        else                                                                                     \
            BASE ARGS;                                                                           \
    } while (0)
#else
#define PM_DISPATCH(BASE, AVX, ARGS) BASE ARGS
#endif

/* Instantiate a loop template as NAME_base and (x86-64) NAME_avx2. */
#ifdef PM_HAVE_AVX2
#define PM_BOTH(TEMPLATE, NAME, ...)                                                              \
    TEMPLATE(NAME##_base, __VA_ARGS__, )                                                         \
    TEMPLATE(NAME##_avx2, __VA_ARGS__, PM_AVX2)
#else
#define PM_BOTH(TEMPLATE, NAME, ...) TEMPLATE(NAME##_base, __VA_ARGS__, )
#endif

static inline int64_t pm_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t pm_max(int64_t a, int64_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------------------------------------ */
/* Mask dilation                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * out[x] = OR(m[y, x-h .. x+h]) (zeros outside) for one row, m = mask with no_data added where
 * check and the image or variance is not finite.  Runs of one value are ORed once over their
 * dilated extent, so mostly-empty masks cost about one read per pixel.
 */
#define PM_OR_ROW(NAME, F, ATTR)                                                                  \
    static inline ATTR void NAME(const int32_t *mrow, const F *irow, const F *vrow, int check,    \
                                 int32_t no_data, int64_t h, int64_t width, int32_t *out) {       \
        memset(out, 0, (size_t)width * sizeof(int32_t));                                         \
        int64_t x = 0;                                                                           \
        while (x < width) {                                                                      \
            int32_t v = mrow[x];                                                                 \
            if (check && !(isfinite(irow[x]) && isfinite(vrow[x]))) v |= no_data;                \
            if (v == 0) {                                                                        \
                x++;                                                                             \
                continue;                                                                        \
            }                                                                                    \
            const int64_t s = x;                                                                 \
            while (x + 1 < width) {                                                              \
                int32_t w = mrow[x + 1];                                                         \
                if (check && !(isfinite(irow[x + 1]) && isfinite(vrow[x + 1]))) w |= no_data;    \
                if (w != v) break;                                                               \
                x++;                                                                             \
            }                                                                                    \
            const int64_t e = pm_min(width, x + h + 1);                                          \
            for (int64_t j = pm_max(0, s - h); j < e; j++) out[j] |= v;                          \
            x++;                                                                                 \
        }                                                                                        \
    }

/*
 * Rows r0 <= y < r1 of the (2h+1)^2 OR-dilation.  Row-dilated rows live in a ring of 2h+1 rows
 * (ring: (2h+1) * width int32, acc: width int32, caller-provided).  With border, rows and
 * columns within h of the edge are set to no_data alone.  check = 0 ignores image/variance.
 */
#define PM_DILATE_BAND(NAME, ORROW, F, ATTR)                                                      \
    static ATTR void NAME(const int32_t *mask, int64_t mstride, const F *image,                  \
                          const F *variance, int64_t istride, int64_t vstride, int64_t height,   \
                          int64_t width, int64_t check, int32_t no_data, int64_t h,              \
                          int64_t border, int64_t r0, int64_t r1, int32_t *out, int64_t ostride, \
                          int32_t *ring, int32_t *acc) {                                         \
        const int64_t n = 2 * h + 1;                                                             \
        for (int64_t yy = pm_max(0, r0 - h); yy < pm_min(height, r0 + h); yy++)                 \
            ORROW(mask + yy * mstride, check ? image + yy * istride : image,                     \
                  check ? variance + yy * vstride : variance, (int)check, no_data, h, width,     \
                  ring + (yy % n) * width);                                                      \
        for (int64_t y = r0; y < r1; y++) {                                                      \
            if (y + h < height) {                                                                \
                const int64_t yy = y + h;                                                        \
                ORROW(mask + yy * mstride, check ? image + yy * istride : image,                 \
                      check ? variance + yy * vstride : variance, (int)check, no_data, h, width, \
                      ring + (yy % n) * width);                                                  \
            }                                                                                    \
            int32_t *o = out + y * ostride;                                                      \
            if (border && (y < h || y >= height - h)) {                                          \
                for (int64_t x = 0; x < width; x++) o[x] = no_data;                              \
                continue;                                                                        \
            }                                                                                    \
            memset(acc, 0, (size_t)width * sizeof(int32_t));                                     \
            const int64_t ye = pm_min(height, y + h + 1);                                        \
            for (int64_t yy = pm_max(0, y - h); yy < ye; yy++) {                                 \
                const int32_t *restrict row = ring + (yy % n) * width;                           \
                int32_t *restrict ac = acc;                                                      \
                for (int64_t x = 0; x < width; x++) ac[x] |= row[x];                             \
            }                                                                                    \
            memcpy(o, acc, (size_t)width * sizeof(int32_t));                                     \
            if (border) {                                                                        \
                for (int64_t x = 0; x < pm_min(h, width); x++) o[x] = no_data;                   \
                for (int64_t x = pm_max(0, width - h); x < width; x++) o[x] = no_data;           \
            }                                                                                    \
        }                                                                                        \
    }

PM_BOTH(PM_OR_ROW, pm_or_row_f32, float)
PM_BOTH(PM_OR_ROW, pm_or_row_f64, double)
PM_DILATE_BAND(pm_dilate_band_f32_base, pm_or_row_f32_base, float, )
PM_DILATE_BAND(pm_dilate_band_f64_base, pm_or_row_f64_base, double, )
#ifdef PM_HAVE_AVX2
PM_DILATE_BAND(pm_dilate_band_f32_avx2, pm_or_row_f32_avx2, float, PM_AVX2)
PM_DILATE_BAND(pm_dilate_band_f64_avx2, pm_or_row_f64_avx2, double, PM_AVX2)
#endif
#define PM_DILATE_DISPATCH(NAME, F, BASE, AVX)                                                    \
    void NAME(const int32_t *mask, int64_t mstride, const F *image, const F *variance,           \
              int64_t istride, int64_t vstride, int64_t height, int64_t width, int64_t check,     \
              int32_t no_data, int64_t h, int64_t border, int64_t r0, int64_t r1, int32_t *out,    \
              int64_t ostride, int32_t *ring, int32_t *acc) {                                     \
        PM_DISPATCH(BASE, AVX,                                                                   \
                    (mask, mstride, image, variance, istride, vstride, height, width, check,      \
                     no_data, h, border, r0, r1, out, ostride, ring, acc));                      \
    }
PM_DILATE_DISPATCH(rb_pm_dilate_band_f32, float, pm_dilate_band_f32_base, pm_dilate_band_f32_avx2)
PM_DILATE_DISPATCH(rb_pm_dilate_band_f64, double, pm_dilate_band_f64_base,
                   pm_dilate_band_f64_avx2)

/* ------------------------------------------------------------------------------------------ */
/* Tile gather                                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * buf[r, c] = input[y0 + r, x0 + c] for r < ny, c < nx, zero everywhere else (buf: rows x cols,
 * contiguous; a window larger than the buffer is cut to it).  Zero also where the input is outside the arrays or bad (NO_DATA in the mask or a
 * non-finite image or variance).  Every element of buf is written.
 */
#define PM_GATHER(NAME, F, R)                                                                     \
    void NAME(const F *image, int64_t istride, const F *variance, int64_t vstride,               \
              const int32_t *mask, int64_t mstride, int64_t height, int64_t width,               \
              int32_t no_data, int64_t y0, int64_t x0, int64_t ny, int64_t nx, int64_t rows,     \
              int64_t cols, R *buf_i, R *buf_v) {                                                \
        /* columns [c0, c1) are copied; both within the buffer row, whatever the window */     \
        const int64_t c0 = pm_min(cols, pm_max(0, -x0));                                         \
        const int64_t c1 = pm_max(c0, pm_min(pm_min(nx, cols), width - x0));                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            R *di = buf_i + r * cols, *dv = buf_v + r * cols;                                    \
            const int64_t y = y0 + r;                                                            \
            if (r >= ny || y < 0 || y >= height) {                                               \
                memset(di, 0, (size_t)cols * sizeof(R));                                         \
                memset(dv, 0, (size_t)cols * sizeof(R));                                         \
                continue;                                                                        \
            }                                                                                    \
            const F *si = image + y * istride, *sv = variance + y * vstride;                     \
            const int32_t *sm = mask + y * mstride;                                              \
            for (int64_t c = 0; c < c0; c++) di[c] = dv[c] = 0;                                  \
            for (int64_t c = c0; c < c1; c++) {                                                  \
                const F a = si[x0 + c], v = sv[x0 + c];                                          \
                const int ok = (sm[x0 + c] & no_data) == 0 && isfinite(a) && isfinite(v);        \
                di[c] = ok ? (R)a : (R)0;                                                        \
                dv[c] = ok ? (R)v : (R)0;                                                        \
            }                                                                                    \
            for (int64_t c = c1; c < cols; c++) di[c] = dv[c] = 0;                               \
        }                                                                                        \
    }

PM_GATHER(rb_pm_gather_f32_f32, float, float)
PM_GATHER(rb_pm_gather_f64_f32, double, float)
PM_GATHER(rb_pm_gather_f32_f64, float, double)
PM_GATHER(rb_pm_gather_f64_f64, double, double)

/* ------------------------------------------------------------------------------------------ */
/* Spectrum products and sums over the y terms (complex as (re, im) pairs)                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * out[t, r, c] = f[r, c] * k[t, r, c] for t < nt, r < rows, c < cols (complex).  Strides are in
 * complex elements: f rows fs; k (kt, kr); out (ot, orr); columns contiguous.
 */
#define PM_MULTIPLY(NAME, R, ATTR)                                                                \
    static ATTR void NAME(const R *f, int64_t fs, const R *k, int64_t kt, int64_t kr, R *out,     \
                          int64_t ot, int64_t orr, int64_t nt, int64_t rows, int64_t cols) {     \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            for (int64_t r = 0; r < rows; r++) {                                                 \
                const R *restrict fr_ = f + 2 * r * fs;                                          \
                const R *restrict kk = k + 2 * (t * kt + r * kr);                                \
                R *restrict oo = out + 2 * (t * ot + r * orr);                                   \
                for (int64_t j = 0; j < cols; j++) {                                             \
                    const R fr = fr_[2 * j], fi = fr_[2 * j + 1];                                \
                    const R kr_ = kk[2 * j], ki = kk[2 * j + 1];                                 \
                    oo[2 * j] = fr * kr_ - fi * ki;                                              \
                    oo[2 * j + 1] = fr * ki + fi * kr_;                                          \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

PM_BOTH(PM_MULTIPLY, pm_multiply_c64, float)
PM_BOTH(PM_MULTIPLY, pm_multiply_c128, double)
#define PM_MULTIPLY_DISPATCH(NAME, R, BASE, AVX)                                                  \
    void NAME(const R *f, int64_t fs, const R *k, int64_t kt, int64_t kr, R *out, int64_t ot,     \
              int64_t orr, int64_t nt, int64_t rows, int64_t cols) {                              \
        PM_DISPATCH(BASE, AVX, (f, fs, k, kt, kr, out, ot, orr, nt, rows, cols));                \
    }
PM_MULTIPLY_DISPATCH(rb_pm_multiply_c64, float, pm_multiply_c64_base, pm_multiply_c64_avx2)
PM_MULTIPLY_DISPATCH(rb_pm_multiply_c128, double, pm_multiply_c128_base, pm_multiply_c128_avx2)

/*
 * out[a, r] = sum over terms t with a_of_t[t] = a of ty[b_of_t[t], ry + r] * z[t, r0 + r] for
 * r < nrows.  z: (nt, zrows, nc) complex, out: (n_a, orows, nc) complex, ty: (nb, tstride) f32.
 */
#define PM_SUM_Y(NAME, R, ATTR)                                                                   \
    static ATTR void NAME(const R *z, int64_t nt, int64_t zrows, int64_t nc, const float *ty,    \
                           int64_t tstride, const int64_t *a_of_t, const int64_t *b_of_t,        \
                           int64_t n_a, int64_t r0, int64_t ry, int64_t nrows, R *out,           \
                           int64_t orows) {                                                      \
        for (int64_t a = 0; a < n_a; a++)                                                        \
            memset(out + 2 * a * orows * nc, 0, (size_t)(2 * nrows * nc) * sizeof(R));           \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            const int64_t a = a_of_t[t], b = b_of_t[t];                                          \
            for (int64_t r = 0; r < nrows; r++) {                                                \
                const R cy = (R)ty[b * tstride + ry + r];                                        \
                const R *restrict src = z + 2 * ((t * zrows + r0 + r) * nc);                     \
                R *restrict dst = out + 2 * ((a * orows + r) * nc);                              \
                for (int64_t j = 0; j < 2 * nc; j++) dst[j] += cy * src[j];                      \
            }                                                                                    \
        }                                                                                        \
    }

PM_BOTH(PM_SUM_Y, pm_sum_y_c64, float)
PM_BOTH(PM_SUM_Y, pm_sum_y_c128, double)
#define PM_SUM_Y_DISPATCH(NAME, R, BASE, AVX)                                                     \
    void NAME(const R *z, int64_t nt, int64_t zrows, int64_t nc, const float *ty,                 \
              int64_t tstride, const int64_t *a_of_t, const int64_t *b_of_t, int64_t n_a,         \
              int64_t r0, int64_t ry, int64_t nrows, R *out, int64_t orows) {                     \
        PM_DISPATCH(BASE, AVX,                                                                   \
                    (z, nt, zrows, nc, ty, tstride, a_of_t, b_of_t, n_a, r0, ry, nrows, out,      \
                     orows));                                                                    \
    }
PM_SUM_Y_DISPATCH(rb_pm_sum_y_c64, float, pm_sum_y_c64_base, pm_sum_y_c64_avx2)
PM_SUM_Y_DISPATCH(rb_pm_sum_y_c128, double, pm_sum_y_c128_base, pm_sum_y_c128_avx2)

/* ------------------------------------------------------------------------------------------ */
/* Per-pixel combination of the spatially varying convolution                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * For r < th, c < tw, output pixel (y0 + r, x0 + c):
 *   img = sum_a tx_a[a, c] rows_i[a, r, c0 + c],   ksum = sum_b tys[b, ry + r] sx[b, c],
 *   w_p = sum_j tys[j, ry + r] dx[p, j, c],        var = sum_p w_p rows_v[p, r, c0 + c],
 *   out_img = img / ksum, out_var = var / ksum^2, or NaN / +inf where out_mask has no_data.
 * rows_i: (n_a, *, *) with strides (ia, ir); rows_v: (rank, *, *) with strides (va, vr);
 * tys: (nd, tstride); tx_a: (n_a, tw); sx: (nsb, tw); dx: (rank, nd, tw); all float32 except
 * rows (R).  scratch: 5 * tw floats.  The terms are summed in float32 in this order.
 */
/* Bit patterns of the float32 quiet NaN and +infinity (IEEE 754). */
#define PM_NAN_BITS ((int32_t)0x7fc00000)
#define PM_INF_BITS ((int32_t)0x7f800000)
#define PM_COMBINE(NAME, R, ATTR)                                                                 \
    static ATTR void NAME(const R *rows_i, int64_t ia, int64_t ir, int64_t n_a, const R *rows_v, \
                           int64_t va, int64_t vr, int64_t rank, const float *tx_a, int64_t tw,   \
                           int64_t th, int64_t c0, const float *tys, int64_t tstride, int64_t nd, \
                           int64_t ry, const float *sx, int64_t nsb, const float *dx, int64_t y0, \
                           int64_t x0, const int32_t *out_mask, int64_t mstride, int32_t no_data, \
                           float *out_img, int64_t istride, float *out_var, int64_t vstride,      \
                           float *scratch) {                                                     \
        float *restrict img = scratch, *restrict ksum = scratch + tw;                            \
        float *restrict var = scratch + 2 * tw, *restrict w = scratch + 3 * tw;                  \
        float *restrict zero = scratch + 4 * tw;                                                 \
        for (int64_t c = 0; c < tw; c++) zero[c] = 0.0f;                                         \
        for (int64_t r = 0; r < th; r++) {                                                       \
            const int64_t q = ry + r;                                                            \
            {                                                                                    \
                const R *restrict ri = rows_i + r * ir + c0;                                     \
                for (int64_t c = 0; c < tw; c++) img[c] = tx_a[c] * (float)ri[c];                \
                for (int64_t a = 1; a < n_a; a++) {                                              \
                    const R *restrict rr = rows_i + a * ia + r * ir + c0;                        \
                    const float *restrict ta = tx_a + a * tw;                                    \
                    for (int64_t c = 0; c < tw; c++) img[c] += ta[c] * (float)rr[c];             \
                }                                                                                \
            }                                                                                    \
            {                                                                                    \
                const float cy = tys[q];                                                         \
                for (int64_t c = 0; c < tw; c++) ksum[c] = cy * sx[c];                           \
                for (int64_t b = 1; b < nsb; b++) {                                              \
                    const float cb = tys[b * tstride + q];                                       \
                    const float *sb = sx + b * tw;                                               \
                    for (int64_t c = 0; c < tw; c++) ksum[c] += cb * sb[c];                      \
                }                                                                                \
            }                                                                                    \
            for (int64_t c = 0; c < tw; c++) var[c] = 0.0f;                                      \
            for (int64_t p = 0; p < rank; p++) {                                                 \
                const float *restrict dp = dx + p * nd * tw;                                     \
                const R *restrict rv = rows_v + p * va + r * vr + c0;                            \
                if (nd <= 5) { /* w_p in registers: up to 5 y terms (spatial order <= 2) */      \
                    const float *restrict d0 = dp;                                               \
                    const float *restrict d1 = nd > 1 ? dp + tw : zero;                          \
                    const float *restrict d2 = nd > 2 ? dp + 2 * tw : zero;                      \
                    const float *restrict d3 = nd > 3 ? dp + 3 * tw : zero;                      \
                    const float *restrict d4 = nd > 4 ? dp + 4 * tw : zero;                      \
                    const float t0 = tys[q];                                                     \
                    const float t1 = nd > 1 ? tys[tstride + q] : 0.0f;                           \
                    const float t2 = nd > 2 ? tys[2 * tstride + q] : 0.0f;                       \
                    const float t3 = nd > 3 ? tys[3 * tstride + q] : 0.0f;                       \
                    const float t4 = nd > 4 ? tys[4 * tstride + q] : 0.0f;                       \
                    for (int64_t c = 0; c < tw; c++) {                                           \
                        const float wc =                                                         \
                            t0 * d0[c] + t1 * d1[c] + t2 * d2[c] + t3 * d3[c] + t4 * d4[c];      \
                        var[c] += wc * (float)rv[c];                                             \
                    }                                                                            \
                    continue;                                                                    \
                }                                                                                \
                const float t0 = tys[q];                                                         \
                for (int64_t c = 0; c < tw; c++) w[c] = t0 * dp[c];                              \
                for (int64_t j = 1; j < nd; j++) {                                               \
                    const float tj = tys[j * tstride + q];                                       \
                    const float *restrict dj = dp + j * tw;                                      \
                    for (int64_t c = 0; c < tw; c++) w[c] += tj * dj[c];                         \
                }                                                                                \
                for (int64_t c = 0; c < tw; c++) var[c] += w[c] * (float)rv[c];                  \
            }                                                                                    \
            const int32_t *restrict om = out_mask + (y0 + r) * mstride + x0;                     \
            float *restrict oi = out_img + (y0 + r) * istride + x0;                              \
            float *restrict ov = out_var + (y0 + r) * vstride + x0;                              \
            /* NO_DATA pixels get NaN / +inf by a bitwise select: a conditional on floats keeps  \
             * GCC from vectorising this loop (trapping math) */                                 \
            for (int64_t c = 0; c < tw; c++) {                                                   \
                const float inv = 1.0f / ksum[c];                                                \
                const int32_t bad = -(int32_t)((om[c] & no_data) != 0);                          \
                const float vi = img[c] * inv, vv = var[c] * inv * inv;                          \
                int32_t bi, bv;                                                                  \
                memcpy(&bi, &vi, sizeof bi);                                                     \
                memcpy(&bv, &vv, sizeof bv);                                                     \
                bi = (bi & ~bad) | (PM_NAN_BITS & bad);                                          \
                bv = (bv & ~bad) | (PM_INF_BITS & bad);                                          \
                memcpy(oi + c, &bi, sizeof bi);                                                  \
                memcpy(ov + c, &bv, sizeof bv);                                                  \
            }                                                                                    \
        }                                                                                        \
    }

PM_BOTH(PM_COMBINE, pm_combine_f32, float)
PM_BOTH(PM_COMBINE, pm_combine_f64, double)
#define PM_COMBINE_DISPATCH(NAME, R, BASE, AVX)                                                   \
    void NAME(const R *rows_i, int64_t ia, int64_t ir, int64_t n_a, const R *rows_v, int64_t va,  \
              int64_t vr, int64_t rank, const float *tx_a, int64_t tw, int64_t th, int64_t c0,    \
              const float *tys, int64_t tstride, int64_t nd, int64_t ry, const float *sx,         \
              int64_t nsb, const float *dx, int64_t y0, int64_t x0, const int32_t *out_mask,      \
              int64_t mstride, int32_t no_data, float *out_img, int64_t istride, float *out_var,  \
              int64_t vstride, float *scratch) {                                                 \
        PM_DISPATCH(BASE, AVX,                                                                   \
                    (rows_i, ia, ir, n_a, rows_v, va, vr, rank, tx_a, tw, th, c0, tys, tstride,   \
                     nd, ry, sx, nsb, dx, y0, x0, out_mask, mstride, no_data, out_img, istride,   \
                     out_var, vstride, scratch));                                                \
    }
PM_COMBINE_DISPATCH(rb_pm_combine_f32, float, pm_combine_f32_base, pm_combine_f32_avx2)
PM_COMBINE_DISPATCH(rb_pm_combine_f64, double, pm_combine_f64_base, pm_combine_f64_avx2)

/* ------------------------------------------------------------------------------------------ */
/* Normal equations of the kernel fit (warping.psfmatch.solve)                                */
/* ------------------------------------------------------------------------------------------ */

/* Four doubles; the unaligned variant is used for every load and store. */
typedef double pm_v4d __attribute__((vector_size(32)));
typedef double pm_v4du __attribute__((vector_size(32), aligned(8)));

/*
 * out[4m + l] = sum_{t < ntap} w[t] in[4m + l - t * stride] for m < nvec, l < 4: a FIR filter
 * along a row (stride 1) or down the rows of a block (stride = row length).  Blocks of eight
 * vectors: eight independent multiply-add chains hide the latency of each (faster than blocks
 * of four); the remaining vectors one by one.
 */
#define PM_FIR(NAME, ATTR)                                                                        \
    static ATTR inline void NAME(double *restrict out, const double *restrict in, int64_t stride, \
                                 const double *restrict w, int64_t ntap, int64_t nvec) {          \
        int64_t m = 0;                                                                           \
        for (; m + 8 <= nvec; m += 8) {                                                          \
            pm_v4d a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,      \
                   a7 = a0;                                                                      \
            const double *b = in + 4 * m;                                                        \
            for (int64_t t = 0; t < ntap; t++) {                                                 \
                const pm_v4d wt = {w[t], w[t], w[t], w[t]};                                      \
                const double *r = b - t * stride;                                                \
                a0 += wt * *(const pm_v4du *)r;                                                  \
                a1 += wt * *(const pm_v4du *)(r + 4);                                            \
                a2 += wt * *(const pm_v4du *)(r + 8);                                            \
                a3 += wt * *(const pm_v4du *)(r + 12);                                           \
                a4 += wt * *(const pm_v4du *)(r + 16);                                           \
                a5 += wt * *(const pm_v4du *)(r + 20);                                           \
                a6 += wt * *(const pm_v4du *)(r + 24);                                           \
                a7 += wt * *(const pm_v4du *)(r + 28);                                           \
            }                                                                                    \
            double *o = out + 4 * m;                                                             \
            *(pm_v4du *)o = a0;                                                                  \
            *(pm_v4du *)(o + 4) = a1;                                                            \
            *(pm_v4du *)(o + 8) = a2;                                                            \
            *(pm_v4du *)(o + 12) = a3;                                                           \
            *(pm_v4du *)(o + 16) = a4;                                                           \
            *(pm_v4du *)(o + 20) = a5;                                                           \
            *(pm_v4du *)(o + 24) = a6;                                                           \
            *(pm_v4du *)(o + 28) = a7;                                                           \
        }                                                                                        \
        for (; m < nvec; m++) {                                                                  \
            pm_v4d a = {0, 0, 0, 0};                                                             \
            for (int64_t t = 0; t < ntap; t++) {                                                 \
                const pm_v4d wt = {w[t], w[t], w[t], w[t]};                                      \
                a += wt * *(const pm_v4du *)(in + 4 * m - t * stride);                           \
            }                                                                                    \
            *(pm_v4du *)(out + 4 * m) = a;                                                       \
        }                                                                                        \
    }

/*
 * out[i] = <a, b_i> for i < 4, over nvec vectors (each a loaded once for the four products;
 * two accumulators per product, even and odd vectors, so the chains overlap).
 */
#define PM_DOT4(NAME, ATTR)                                                                       \
    static ATTR inline void NAME(const double *restrict a, const double *const *b, int64_t nb,    \
                                 int64_t nvec, double *out) {                                    \
        pm_v4d s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;  \
        const double *b0 = b[0], *b1 = nb > 1 ? b[1] : b[0], *b2 = nb > 2 ? b[2] : b[0];          \
        const double *b3 = nb > 3 ? b[3] : b[0];                                                 \
        int64_t m = 0;                                                                           \
        for (; m + 2 <= nvec; m += 2) {                                                          \
            const pm_v4d x = *(const pm_v4du *)(a + 4 * m);                                      \
            const pm_v4d y = *(const pm_v4du *)(a + 4 * m + 4);                                  \
            s0 += x * *(const pm_v4du *)(b0 + 4 * m);                                            \
            s1 += x * *(const pm_v4du *)(b1 + 4 * m);                                            \
            s2 += x * *(const pm_v4du *)(b2 + 4 * m);                                            \
            s3 += x * *(const pm_v4du *)(b3 + 4 * m);                                            \
            t0 += y * *(const pm_v4du *)(b0 + 4 * m + 4);                                        \
            t1 += y * *(const pm_v4du *)(b1 + 4 * m + 4);                                        \
            t2 += y * *(const pm_v4du *)(b2 + 4 * m + 4);                                        \
            t3 += y * *(const pm_v4du *)(b3 + 4 * m + 4);                                        \
        }                                                                                        \
        if (m < nvec) {                                                                          \
            const pm_v4d x = *(const pm_v4du *)(a + 4 * m);                                      \
            s0 += x * *(const pm_v4du *)(b0 + 4 * m);                                            \
            s1 += x * *(const pm_v4du *)(b1 + 4 * m);                                            \
            s2 += x * *(const pm_v4du *)(b2 + 4 * m);                                            \
            s3 += x * *(const pm_v4du *)(b3 + 4 * m);                                            \
        }                                                                                        \
        s0 += t0;                                                                                \
        s1 += t1;                                                                                \
        s2 += t2;                                                                                \
        s3 += t3;                                                                                \
        const pm_v4d *s[4] = {&s0, &s1, &s2, &s3};                                               \
        for (int64_t i = 0; i < nb; i++)                                                         \
            out[i] = ((*s[i])[0] + (*s[i])[1]) + ((*s[i])[2] + (*s[i])[3]);                      \
    }

/*
 * Gram matrices of the separable design, one cell after another.  For cell c (stamp S =
 * sci[c], p x p; h = k / 2; output window of q x q pixels starting at pixel (o, o)):
 *   X_f[y, x] = sum_u fun[f, u + h] S[y, o + x - u]           (row pass, S zero outside),
 *   D_j[y, x] = sum_v fun[iy[j], v + h] X_{ix[j]}[o + y - v, x] (column pass),
 * for every raw kernel j < nraw; then the basis images E_i = sum_{j <= i} tr[i, j] D_j (the
 * renormalisation, tr lower triangular, applied in place from the last row up) and
 * E_nraw = target[c] (q x q).  gram[c] ((nraw+1)^2) holds all the products <E_i, E_j> over the
 * window: the design's Gram matrix, its products with the target and the target's norm.  Rows
 * are padded to a multiple of four doubles (zeros), and every buffer of one cell fits in L2.
 * Returns 0, or -1 when a buffer cannot be allocated.
 */
#define PM_CELL_GRAM(NAME, FIR, DOT4, ATTR)                                                       \
    static ATTR int64_t NAME(const double *sci, int64_t ncell, int64_t p, const double *target,   \
                             const double *fun, int64_t nf, int64_t k, const int64_t *ix,         \
                             const int64_t *iy, const double *tr, int64_t nraw, int64_t o,        \
                             int64_t q, double *gram) {                                          \
        const int64_t h = k / 2, qq = (q + 3) & ~(int64_t)3, nv = qq / 4;                        \
        /* padded stamp row: S[y, i - h] at i; long enough for the stamp and for every read */   \
        const int64_t ls = (o + qq > p ? o + qq : p) + 2 * h;                                     \
        const int64_t xr = p + 2 * h;      /* rows of each row-pass block, h zero rows each side */ \
        const int64_t nd = nraw + 1, plen = q * qq;                                              \
        double *spad = (double *)calloc((size_t)(p * ls), sizeof(double));                       \
        double *xb = (double *)calloc((size_t)(nf * xr * qq), sizeof(double));                   \
        double *d = (double *)calloc((size_t)(nd * plen), sizeof(double));                       \
        double *tmp = (double *)malloc((size_t)plen * sizeof(double));                           \
        char *used = (char *)calloc((size_t)nf, 1);                                              \
        if (!spad || !xb || !d || !tmp || !used) {                                               \
            free(spad); free(xb); free(d); free(tmp); free(used);                                \
            return -1;                                                                           \
        }                                                                                        \
        for (int64_t j = 0; j < nraw; j++) used[ix[j]] = 1;                                      \
        double row[4];                                                                      \
        for (int64_t c = 0; c < ncell; c++) {                                                    \
            const double *s = sci + c * p * p;                                                   \
            for (int64_t y = 0; y < p; y++)                                                      \
                memcpy(spad + y * ls + h, s + y * p, (size_t)p * sizeof(double));                \
            /* row pass: X_f rows h .. h + p - 1 (the rest stay zero) */                         \
            for (int64_t f = 0; f < nf; f++) {                                                   \
                if (!used[f]) continue;                                                          \
                for (int64_t y = 0; y < p; y++)                                                  \
                    FIR(xb + (f * xr + h + y) * qq, spad + y * ls + o + 2 * h, 1, fun + f * k,   \
                        k, nv);                                                                  \
            }                                                                                    \
            /* column pass, then zero the padding columns */                                     \
            for (int64_t j = 0; j < nraw; j++) {                                                 \
                const double *xf = xb + ix[j] * xr * qq;                                         \
                double *dj = d + j * plen;                                                       \
                for (int64_t y = 0; y < q; y++) {                                                \
                    FIR(dj + y * qq, xf + (o + y + 2 * h) * qq, qq, fun + iy[j] * k, k, nv);    \
                    for (int64_t x = q; x < qq; x++) dj[y * qq + x] = 0.0;                       \
                }                                                                                \
            }                                                                                    \
            for (int64_t i = nraw - 1; i >= 0; i--) {                                            \
                memset(tmp, 0, (size_t)plen * sizeof(double));                                   \
                for (int64_t j = 0; j <= i; j++) {                                               \
                    const double w = tr[i * nraw + j];                                           \
                    if (w == 0.0) continue;                                                      \
                    const double *dj = d + j * plen;                                             \
                    for (int64_t m = 0; m < plen; m++) tmp[m] += w * dj[m];                      \
                }                                                                                \
                memcpy(d + i * plen, tmp, (size_t)plen * sizeof(double));                        \
            }                                                                                    \
            for (int64_t y = 0; y < q; y++)                                                      \
                memcpy(d + nraw * plen + y * qq, target + c * q * q + y * q,                     \
                       (size_t)q * sizeof(double));                                              \
            double *g = gram + c * nd * nd;                                                      \
            for (int64_t j = 0; j < nd; j++) {                                                   \
                for (int64_t i = j; i < nd; i += 4) {                                            \
                    const int64_t nb = nd - i < 4 ? nd - i : 4;                                  \
                    const double *bs[4];                                                         \
                    for (int64_t l = 0; l < nb; l++) bs[l] = d + (i + l) * plen;                 \
                    DOT4(d + j * plen, bs, nb, plen / 4, row);                                   \
                    for (int64_t l = 0; l < nb; l++) g[j * nd + i + l] = g[(i + l) * nd + j] = row[l]; \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        free(spad); free(xb); free(d); free(tmp); free(used);                                    \
        return 0;                                                                                \
    }

PM_FIR(pm_fir_base, )
PM_DOT4(pm_dot4_base, )
PM_CELL_GRAM(pm_cell_gram_base, pm_fir_base, pm_dot4_base, )
#ifdef PM_HAVE_AVX2
PM_FIR(pm_fir_avx2, PM_AVX2)
PM_DOT4(pm_dot4_avx2, PM_AVX2)
PM_CELL_GRAM(pm_cell_gram_avx2, pm_fir_avx2, pm_dot4_avx2, PM_AVX2)
#endif

int64_t rb_pm_cell_gram(const double *sci, int64_t ncell, int64_t p, const double *target,
                        const double *fun, int64_t nf, int64_t k, const int64_t *ix,
                        const int64_t *iy, const double *tr, int64_t nraw, int64_t o, int64_t q,
                        double *gram) {
    if (k < 1 || q < 1 || o < 0 || o + q > p || nf < 1 || nraw < 1) return -2;
#ifdef PM_HAVE_AVX2
    if (pm_avx2())
        return pm_cell_gram_avx2(sci, ncell, p, target, fun, nf, k, ix, iy, tr, nraw, o, q, gram);
#endif
    return pm_cell_gram_base(sci, ncell, p, target, fun, nf, k, ix, iy, tr, nraw, o, q, gram);
}

/* ------------------------------------------------------------------------------------------ */
/* Warped-PSF resampler (warping.coadd_psf.WarpedPsf.compute_kernel_images)                   */
/* ------------------------------------------------------------------------------------------ */

/*
 * Lanczos-n weights of taps a = -(n-1) .. n at fractional offset f; returns their sum.
 * L(a - f) = sinc(a - f) sinc((a - f) / n) with sin(pi (a - f)) = (-1)^(a+1) sin(pi f) and
 * sin(pi (a - f) / n) by angle addition from ang_s/ang_c = sin/cos(pi a / n), so two
 * trigonometric calls serve all 2n taps; sin(pi f) = sin(n theta) by the Chebyshev recurrence.
 */
static double pm_lanczos_taps(double f, int64_t n, const double *ang_s, const double *ang_c,
                              double *w) {
    const double pi = 3.14159265358979323846;
    const double theta = pi * f / (double)n;
    const double st = sin(theta), ct = cos(theta);
    double s_prev = 0.0, s_cur = st;
    for (int64_t k = 0; k < n - 1; k++) {
        const double nxt = 2.0 * ct * s_cur - s_prev;
        s_prev = s_cur;
        s_cur = nxt;
    }
    const double spf = s_cur;
    double total = 0.0;
    for (int64_t k = 0; k < 2 * n; k++) {
        const int64_t a = k - (n - 1);
        const double x = pi * ((double)a - f);
        if (fabs(x) <= 1e-5) {
            w[k] = 1.0;
        } else {
            const double sign = ((a + 1) % 2 == 0) ? 1.0 : -1.0;
            w[k] = sign * spf * (ang_s[k] * ct - ang_c[k] * st) / (x * (x / (double)n));
        }
        total += w[k];
    }
    return total;
}

/*
 * Lanczos-n resampling of one small source image per cell, zero outside it.  Cell c: output
 * pixel (i, j) (i, j < 2 half[c] + 1) samples source parent position start[c] + i dv[c] +
 * j du[c] from src[c, :h, :w] (src: (ncell, sh, sw) contiguous float64) whose pixel [0, 0] is
 * parent src_xy0[c].  Weights are normalised by their sums per axis.  out: (ncell, os, os).
 * Each source stamp is copied into a buffer with a zero border of 2n pixels, so a footprint is
 * either entirely inside that buffer (no per-tap bounds checks) or entirely outside the stamp
 * (the output is 0).  Returns 0, or -1 when the buffer cannot be allocated.
 */
int64_t rb_pm_resample_lanczos(const double *src, int64_t ncell, int64_t sh, int64_t sw,
                               const int64_t *src_shape, const double *src_xy0,
                               const double *start, const double *du, const double *dv,
                               const int64_t *half, int64_t n, double *out, int64_t os) {
    const double pi = 3.14159265358979323846;
    double wx[32], wy[32], ang_s[32], ang_c[32];
    if (n < 1 || n > 16) return -1;
    const int64_t nk = 2 * n, pad = 2 * n, pw = sw + 2 * pad, ph = sh + 2 * pad;
    double *buf = (double *)malloc((size_t)(pw * ph) * sizeof(double));
    if (!buf) return -1;
    for (int64_t k = 0; k < nk; k++) {
        const double tap = (double)(k - (n - 1));
        ang_s[k] = sin(pi * tap / (double)n);
        ang_c[k] = cos(pi * tap / (double)n);
    }
    for (int64_t c = 0; c < ncell; c++) {
        const int64_t hs = src_shape[2 * c], ws = src_shape[2 * c + 1];
        const int64_t size = 2 * half[c] + 1;
        const int64_t bw = ws + 2 * pad, bh = hs + 2 * pad; /* this cell's padded stamp */
        const double *s = src + c * sh * sw;
        memset(buf, 0, (size_t)(bw * bh) * sizeof(double));
        for (int64_t r = 0; r < hs; r++)
            memcpy(buf + (r + pad) * bw + pad, s + r * sw, (size_t)ws * sizeof(double));
        double *o = out + c * os * os;
        for (int64_t i = 0; i < size; i++) {
            for (int64_t j = 0; j < size; j++) {
                const double u = start[2 * c] + (double)i * dv[2 * c] + (double)j * du[2 * c] -
                                 src_xy0[2 * c];
                const double v = start[2 * c + 1] + (double)i * dv[2 * c + 1] +
                                 (double)j * du[2 * c + 1] - src_xy0[2 * c + 1];
                const double fu = floor(u), fv = floor(v);
                /* first tap in padded coordinates; outside [0, b - nk] the footprint misses the
                 * stamp entirely (the border is as wide as the footprint) */
                const double bx = fu - (double)(n - 1) + (double)pad;
                const double by = fv - (double)(n - 1) + (double)pad;
                if (!(bx >= 0.0 && bx <= (double)(bw - nk) && by >= 0.0 &&
                      by <= (double)(bh - nk))) {
                    o[i * os + j] = 0.0;
                    continue;
                }
                const double sx = pm_lanczos_taps(u - fu, n, ang_s, ang_c, wx);
                const double sy = pm_lanczos_taps(v - fv, n, ang_s, ang_c, wy);
                const double *base = buf + (int64_t)by * bw + (int64_t)bx;
                double acc = 0.0;
                for (int64_t ky = 0; ky < nk; ky++) {
                    const double *row = base + ky * bw;
                    double part = 0.0;
                    for (int64_t kx = 0; kx < nk; kx++) part += wx[kx] * row[kx];
                    acc += wy[ky] * part;
                }
                o[i * os + j] = acc / (sx * sy);
            }
        }
    }
    free(buf);
    return 0;
}

/* ABI version of these entry points, checked by the loader. */
int64_t rb_pm_abi_version(void) { return 4; }
