/*
 * repo-butler warping core: image, variance and mask of a band of destination rows in one pass.
 *
 * Plain C99 (no Python headers), loaded with ctypes by warping/warp/_clib.py, which compiles it
 * once per machine and caches the shared library.  Calls run without the GIL, so row bands are
 * warped on a Python thread pool.
 *
 * Semantics (LSST afw warpExposure, see warping/warp/_high_level.py for the Python contract):
 *  - source positions come from a coarse grid of exact transform evaluations (gx, gy) and are
 *    interpolated bilinearly inside each grid cell, independently per cell;
 *  - the kernel is separable; along one axis a position u with i0 = floor(u), f = u - i0 touches
 *    source indices i0 - (n-1) .. i0 + n with weights from a table (Lanczos: linear interpolation
 *    between rows of exact weights; bilinear and nearest: closed form).  Taps with an exactly
 *    zero weight (all but the centre one when f == 0) are not part of the footprint;
 *  - weights are normalised to sum 1 per axis, then the image is multiplied by the relative
 *    pixel area (conserve_flux), the variance uses the squared weights;
 *  - the mask ORs the mask kernel's footprint, and the "full" bits over the image kernel's
 *    footprint; a coarse block map lets blocks with no such bit skip that OR;
 *  - a destination pixel whose footprint is not entirely inside the source (or whose position
 *    is NaN) gets pad_value / +inf variance / NO_DATA.
 *
 * Hot path (x86-64 with AVX2+FMA, chosen at run time): float32 data, Lanczos-n, both fractional
 * offsets nonzero: source rows are read as quads of 4 floats (and a final pair for odd n, so no
 * load leaves the footprint and a NaN next to it cannot leak in through 0 * NaN), widened to
 * float64, accumulated with the y weights and finished with one dot product against the x
 * weights.
 * Accumulation is in float64 in both paths; float64 data always take the scalar path.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define RB_KIND_NEAREST 0
#define RB_KIND_BILINEAR 1
#define RB_KIND_LANCZOS 2

#define RB_TILE_ROWS 32
#define RB_TILE_COLS 64
#define RB_MAP_SHIFT 4
#define RB_MAP_BLOCK (1 << RB_MAP_SHIFT)
#define RB_MAXTAPS 10



/* Arguments shared by every row band (mirrored by a ctypes Structure in _clib.py). */
typedef struct {
    const void *src_img;
    const void *src_var;
    const int32_t *src_mask;
    int64_t hs, ws;
    int64_t sstride, mstride; /* row strides (elements) of image/variance and of the mask */
    int64_t do_var, mask_in, mask_out;
    const double *nodes_x;
    int64_t nnx;
    const double *nodes_y;
    int64_t nny;
    const double *gx, *gy, *ga; /* (nny, nnx); ga unused unless conserve_flux */
    int64_t step, origin_y;
    void *out_img;
    void *out_var;
    int32_t *out_mask;
    int64_t wd;
    int64_t ostride, vstride, omstride; /* row strides (elements) of out_img, out_var, out_mask */
    int64_t kind, n;
    const double *table; /* (rows + 2, 2n) exact weights at f = k / rows */
    const double *dtable; /* (rows + 2, tstride) copy of table, zero padded (hot path) */
    const double *tsum;   /* (rows + 2) row sums of table (hot path) */
    int64_t tstride;      /* columns of dtable (a multiple of 4, >= 2n) */
    int64_t rows;
    int64_t mkind, mn;
    int64_t full_bits; /* -1: all bits */
    int64_t nodata_bits;
    double pad_value;
    int64_t conserve_flux;
    const uint8_t *full_map;
    int64_t map_cols;
    int64_t use_full_map;
} rb_args;

static inline int64_t rb_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t rb_max(int64_t a, int64_t b) { return a > b ? a : b; }

/* One-axis weights of the image kernel at fractional offset f; returns the footprint [lo, hi]. */
static inline void rb_weights(const rb_args *A, double f, double *w, int64_t *lo, int64_t *hi) {
    const int64_t n = A->n, nk = 2 * n;
    if (A->kind == RB_KIND_BILINEAR) {
        w[0] = 1.0 - f;
        w[1] = f;
        *lo = 0;
        *hi = f == 0.0 ? 0 : 1;
    } else if (A->kind == RB_KIND_NEAREST) {
        int64_t l = f < 0.5 ? 0 : 1;
        w[0] = 1.0 - (double)l;
        w[1] = (double)l;
        *lo = l;
        *hi = l;
    } else {
        const int64_t rows = A->rows;
        double t = f * (double)rows;
        int64_t k = (int64_t)t;
        if (k > rows - 1) k = rows - 1;
        t -= (double)k;
        const double *t0 = A->table + k * nk, *t1 = t0 + nk;
        for (int64_t a = 0; a < nk; a++) w[a] = t0[a] + t * (t1[a] - t0[a]);
        if (f == 0.0) {
            *lo = n - 1;
            *hi = n - 1;
        } else {
            *lo = 0;
            *hi = nk - 1;
        }
    }
}

/* OR of the mask over the mask kernel's footprint at (i0 + fx, j0 + fy). */
static inline int32_t rb_mask_footprint(const rb_args *A, int64_t i0, int64_t j0, double fx,
                                        double fy) {
    const int64_t mn = A->mn;
    int64_t xl, xh, yl, yh;
    if (A->mkind == RB_KIND_NEAREST) {
        xl = xh = fx < 0.5 ? 0 : 1;
        yl = yh = fy < 0.5 ? 0 : 1;
    } else if (A->mkind == RB_KIND_BILINEAR) {
        xl = 0;
        xh = fx == 0.0 ? 0 : 1;
        yl = 0;
        yh = fy == 0.0 ? 0 : 1;
    } else {
        xl = fx == 0.0 ? mn - 1 : 0;
        xh = fx == 0.0 ? mn - 1 : 2 * mn - 1;
        yl = fy == 0.0 ? mn - 1 : 0;
        yh = fy == 0.0 ? mn - 1 : 2 * mn - 1;
    }
    const int64_t bx = i0 - (mn - 1), by = j0 - (mn - 1), ms = A->mstride;
    int32_t m = 0;
    for (int64_t b = yl; b <= yh; b++) {
        const int32_t *row = A->src_mask + (by + b) * ms + bx;
        for (int64_t a = xl; a <= xh; a++) m |= row[a];
    }
    return m;
}

/* Mask bits of one good destination pixel (the part shared by the scalar and vector paths). */
static inline int32_t rb_mask_bits(const rb_args *A, int64_t i0, int64_t j0, double fx, double fy,
                                   int64_t xl, int64_t xh, int64_t yl, int64_t yh, int same,
                                   int do_full) {
    int32_t bits = 0;
    if (!A->mask_in) return 0;
    if (do_full &&
        (!A->use_full_map ||
         A->full_map[(j0 >> RB_MAP_SHIFT) * A->map_cols + (i0 >> RB_MAP_SHIFT)] != 0)) {
        const int64_t n = A->n, ms = A->mstride;
        const int64_t bx = i0 - (n - 1), by = j0 - (n - 1);
        int32_t m = 0;
        for (int64_t b = yl; b <= yh; b++) {
            const int32_t *row = A->src_mask + (by + b) * ms + bx;
            for (int64_t a = xl; a <= xh; a++) m |= row[a];
        }
        bits = m & (int32_t)A->full_bits;
    }
    if (!same) bits |= rb_mask_footprint(A, i0, j0, fx, fy);
    return bits;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RB_HAVE_AVX2_PATH 1
#include <immintrin.h>
#define RB_AVX2 __attribute__((target("avx2,fma")))

static inline RB_AVX2 double rb_hsum4(__m256d v) {
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/*
 * Hot path for one destination pixel: float32 data, Lanczos-n (nk = 2n taps, nq = ceil(nk / 4)
 * weight quads), both fractional offsets nonzero (full footprint).  Weights come from the float64
 * table padded with zero columns; source floats are read as quads (and a final pair for n odd),
 * widened to float64 in one instruction, accumulated with their row's y weight, and one dot
 * product with the x weights finishes.  Same float64 arithmetic as the
 * scalar path up to the order of the additions.
 */
static inline __attribute__((always_inline)) RB_AVX2 void rb_vec_pixel(
    const rb_args *A, const float *src, const float *svar, const int64_t nk, const int64_t nq,
    double fx, double fy, int64_t bx, int64_t by, double area, int do_var, float *out_i,
    float *out_v) {
    const int64_t rows = A->rows, ss = A->sstride, fstride = A->tstride;
    double tx = fx * (double)rows, ty = fy * (double)rows;
    int64_t kx = (int64_t)tx, ky = (int64_t)ty;
    if (kx > rows - 1) kx = rows - 1;
    if (ky > rows - 1) ky = rows - 1;
    tx -= (double)kx;
    ty -= (double)ky;
    const double *px = A->dtable + kx * fstride, *py = A->dtable + ky * fstride;
    /* the sum of interpolated weights is the interpolated row sum */
    const double sx = A->tsum[kx] + tx * (A->tsum[kx + 1] - A->tsum[kx]);
    const double sy = A->tsum[ky] + ty * (A->tsum[ky + 1] - A->tsum[ky]);
    const double scale = area / (sx * sy);
    const __m256d vtx = _mm256_set1_pd(tx), vty = _mm256_set1_pd(ty);
    __m256d wx[3];
    double wy[12] __attribute__((aligned(32)));
    for (int64_t q = 0; q < nq; q++) {
        __m256d t0 = _mm256_loadu_pd(px + 4 * q), t1 = _mm256_loadu_pd(px + fstride + 4 * q);
        wx[q] = _mm256_fmadd_pd(vtx, _mm256_sub_pd(t1, t0), t0);
        t0 = _mm256_loadu_pd(py + 4 * q);
        t1 = _mm256_loadu_pd(py + fstride + 4 * q);
        _mm256_store_pd(wy + 4 * q, _mm256_fmadd_pd(vty, _mm256_sub_pd(t1, t0), t0));
    }
    /* nk = 4 * nq4 + 2 * pair: whole quads of 4 taps, then (Lanczos-3 and -5) one pair of 2, so
     * no load reaches outside the footprint (a NaN there must not leak in through 0 * NaN) */
    const int64_t nq4 = nk / 4, pair = nk % 4 != 0;
    __m128d wxp = _mm_setzero_pd();
    if (pair) wxp = _mm256_castpd256_pd128(wx[nq4]);
    __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    __m128d accp = _mm_setzero_pd();
    const float *base = src + by * ss + bx;
    for (int64_t b = 0; b < nk; b++) {
        const float *r = base + b * ss;
        const __m256d w = _mm256_set1_pd(wy[b]);
        for (int64_t q = 0; q < nq4; q++)
            acc[q] = _mm256_fmadd_pd(w, _mm256_cvtps_pd(_mm_loadu_ps(r + 4 * q)), acc[q]);
        if (pair) {
            const __m128d x = _mm_cvtps_pd(_mm_castpd_ps(_mm_load_sd((const double *)(r + 4 * nq4))));
            accp = _mm_fmadd_pd(_mm256_castpd256_pd128(w), x, accp);
        }
    }
    __m256d prod = _mm256_mul_pd(acc[0], wx[0]);
    for (int64_t q = 1; q < nq4; q++) prod = _mm256_fmadd_pd(acc[q], wx[q], prod);
    double sum = rb_hsum4(prod);
    if (pair) {
        const __m128d pp = _mm_mul_pd(accp, wxp);
        sum += _mm_cvtsd_f64(_mm_add_sd(pp, _mm_unpackhi_pd(pp, pp)));
    }
    *out_i = (float)(sum * scale);
    if (!do_var) return;
    __m256d av[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    __m128d avp = _mm_setzero_pd();
    const float *vbase = svar + by * ss + bx;
    for (int64_t b = 0; b < nk; b++) {
        const float *r = vbase + b * ss;
        const __m256d w2 = _mm256_set1_pd(wy[b] * wy[b]);
        for (int64_t q = 0; q < nq4; q++)
            av[q] = _mm256_fmadd_pd(w2, _mm256_cvtps_pd(_mm_loadu_ps(r + 4 * q)), av[q]);
        if (pair) {
            const __m128d x = _mm_cvtps_pd(_mm_castpd_ps(_mm_load_sd((const double *)(r + 4 * nq4))));
            avp = _mm_fmadd_pd(_mm256_castpd256_pd128(w2), x, avp);
        }
    }
    __m256d pv = _mm256_mul_pd(av[0], _mm256_mul_pd(wx[0], wx[0]));
    for (int64_t q = 1; q < nq4; q++) pv = _mm256_fmadd_pd(av[q], _mm256_mul_pd(wx[q], wx[q]), pv);
    double vsum = rb_hsum4(pv);
    if (pair) {
        const __m128d pp = _mm_mul_pd(avp, _mm_mul_pd(wxp, wxp));
        vsum += _mm_cvtsd_f64(_mm_add_sd(pp, _mm_unpackhi_pd(pp, pp)));
    }
    *out_v = (float)(vsum * (scale * scale));
}

/* Vector hot path with a constant tap count (loops fully unrolled), one per Lanczos-2..5. */
#define RB_VEC_FN(NAME, NK, NQ)                                                                   \
    static inline __attribute__((always_inline)) RB_AVX2 int NAME(                              \
        const rb_args *A, const void *src, const void *svar, int64_t nk, double fx, double fy,   \
        int64_t bx, int64_t by, double area, int do_var, float *vi, float *vv) {                 \
        (void)nk;                                                                                \
        rb_vec_pixel(A, (const float *)src, (const float *)svar, NK, NQ, fx, fy, bx, by, area,   \
                     do_var, vi, vv);                                                            \
        return 1;                                                                                \
    }
RB_VEC_FN(rb_vec_nk4, 4, 1)
RB_VEC_FN(rb_vec_nk6, 6, 2)
RB_VEC_FN(rb_vec_nk8, 8, 2)
RB_VEC_FN(rb_vec_nk10, 10, 3)
#endif

/* No vector path (generic build, float64 data): the scalar code handles every pixel. */
static inline int rb_vec_none(const rb_args *A, const void *src, const void *svar, int64_t nk,
                              double fx, double fy, int64_t bx, int64_t by, double area,
                              int do_var, float *vi, float *vv) {
    (void)A, (void)src, (void)svar, (void)nk, (void)fx, (void)fy, (void)bx, (void)by;
    (void)area, (void)do_var, (void)vi, (void)vv;
    return 0;
}

/*
 * Scalar/vector body, instantiated for float (F32 = 1) and double (F32 = 0) data.  scratch holds
 * 3 * nnx doubles (the grid columns interpolated to the current row), one per calling thread.
 */
#define RB_DEFINE_ROWS(NAME, T, VEC, VECFN, ATTR)                                                \
    static ATTR int64_t NAME(const rb_args *A, int64_t row_start, int64_t row_stop, double *scratch) { \
        const T *src = (const T *)A->src_img;                                                    \
        const T *svar = (const T *)A->src_var;                                                   \
        T *oimg = (T *)A->out_img;                                                               \
        T *ovar = (T *)A->out_var;                                                               \
        int32_t *omask = A->out_mask;                                                            \
        const int64_t hs = A->hs, ws = A->ws, wd = A->wd, n = A->n, nk = 2 * n;                  \
        const int64_t ss = A->sstride, ms = A->mstride;                                          \
        const int64_t step = A->step, ncol = A->nnx, nny = A->nny, last_cell = ncol - 2;          \
        const int same = A->mkind == A->kind && A->mn == n;                                      \
        const int do_var = A->do_var != 0, mask_out = A->mask_out != 0;                          \
        const int do_full = A->mask_in && mask_out && A->full_bits != 0;                        \
        const int mask_bilinear = A->mkind == RB_KIND_BILINEAR && !same;                         \
        const int vec_ok = VEC && A->kind == RB_KIND_LANCZOS && A->dtable != 0;                  \
        const int64_t span = nk; /* floats read per source row by the hot path */                 \
        const T pad = (T)A->pad_value;                                                           \
        const T inf = (T)INFINITY;                                                               \
        const int32_t nodata = (int32_t)A->nodata_bits;                                          \
        const double ulo = (double)(n - 1), uhi = (double)(ws - n), vhi = (double)(hs - n);      \
        double *cx = scratch, *cy = scratch + ncol, *ca = scratch + 2 * ncol;                    \
        double wx[RB_MAXTAPS], wy[RB_MAXTAPS];                                                   \
        int64_t good = 0;                                                                        \
        for (int64_t ja = row_start; ja < row_stop; ja += RB_TILE_ROWS) {                        \
            const int64_t jb = rb_min(ja + RB_TILE_ROWS, row_stop);                              \
            for (int64_t ia = 0; ia < wd; ia += RB_TILE_COLS) {                                  \
                const int64_t ib = rb_min(ia + RB_TILE_COLS, wd);                                \
                const int64_t klo = rb_min(rb_max((ia + 1) / step, 0), last_cell);              \
                int64_t khi = rb_min(rb_max(ib / step, 0), last_cell) + 2;                       \
                if (khi > ncol) khi = ncol;                                                      \
                for (int64_t j = ja; j < jb; j++) {                                              \
                    int64_t ky = (j - A->origin_y) / step;                                       \
                    ky = rb_min(rb_max(ky, 0), nny - 2);                                         \
                    const double ylo = A->nodes_y[ky];                                           \
                    const double ty = ((double)j - ylo) / (A->nodes_y[ky + 1] - ylo);            \
                    const double *g0x = A->gx + ky * ncol, *g1x = g0x + ncol;                    \
                    const double *g0y = A->gy + ky * ncol, *g1y = g0y + ncol;                    \
                    for (int64_t c = klo; c < khi; c++) {                                        \
                        if (ty == 0.0) {                                                         \
                            cx[c] = g0x[c];                                                      \
                            cy[c] = g0y[c];                                                      \
                        } else if (ty == 1.0) {                                                  \
                            cx[c] = g1x[c];                                                      \
                            cy[c] = g1y[c];                                                      \
                        } else {                                                                 \
                            cx[c] = g0x[c] + ty * (g1x[c] - g0x[c]);                             \
                            cy[c] = g0y[c] + ty * (g1y[c] - g0y[c]);                             \
                        }                                                                        \
                    }                                                                            \
                    if (A->conserve_flux) {                                                      \
                        const double *g0a = A->ga + ky * ncol, *g1a = g0a + ncol;                \
                        for (int64_t c = klo; c < khi; c++) {                                    \
                            if (ty == 0.0)                                                       \
                                ca[c] = g0a[c];                                                  \
                            else if (ty == 1.0)                                                  \
                                ca[c] = g1a[c];                                                  \
                            else                                                                 \
                                ca[c] = g0a[c] + ty * (g1a[c] - g0a[c]);                         \
                        }                                                                        \
                    }                                                                            \
                    T *orow = oimg + j * A->ostride;                                             \
                    T *vrow = do_var ? ovar + j * A->vstride : 0;                                \
                    int32_t *mrow = mask_out ? omask + j * A->omstride : 0;                      \
                    int64_t i = ia;                                                              \
                    while (i < ib) {                                                             \
                        const int64_t k = rb_min(rb_max((i + 1) / step, 0), last_cell);         \
                        const int64_t lo = (int64_t)A->nodes_x[k];                               \
                        const int64_t hi = (int64_t)A->nodes_x[k + 1];                           \
                        int64_t stop = k == last_cell ? hi + 1 : hi;                             \
                        if (stop > ib) stop = ib;                                                \
                        const double inv = 1.0 / (double)(hi - lo);                              \
                        const double x0 = cx[k], y0 = cy[k];                                     \
                        const double dx = (cx[k + 1] - x0) * inv, dy = (cy[k + 1] - y0) * inv;    \
                        double a0 = 1.0, da = 0.0;                                               \
                        if (A->conserve_flux) {                                                  \
                            a0 = ca[k];                                                          \
                            da = (ca[k + 1] - a0) * inv;                                         \
                        }                                                                        \
                        for (int64_t ii = i; ii < stop; ii++) {                                  \
                            const int64_t m = ii - lo;                                           \
                            double u, v, area;                                                   \
                            if (m == 0) {                                                        \
                                u = x0;                                                          \
                                v = y0;                                                          \
                                area = a0;                                                       \
                            } else {                                                             \
                                u = x0 + (double)m * dx;                                         \
                                v = y0 + (double)m * dy;                                         \
                                area = a0 + (double)m * da;                                      \
                            }                                                                    \
                            if (!(u >= ulo && u < uhi && v >= ulo && v < vhi && area == area)) { \
                                orow[ii] = pad;                                                  \
                                if (do_var) vrow[ii] = inf;                                      \
                                if (mask_out) mrow[ii] = nodata;                                 \
                                continue;                                                        \
                            }                                                                    \
                            good++;                                                              \
                            const int64_t i0 = (int64_t)u, j0 = (int64_t)v;                      \
                            const double fx = u - (double)i0, fy = v - (double)j0;               \
                            const int64_t bx = i0 - (n - 1), by = j0 - (n - 1);                  \
                            float vi = 0.0f, vv = 0.0f;                                          \
                            if (vec_ok && fx != 0.0 && fy != 0.0 && bx + span <= ws &&           \
                                VECFN(A, src, svar, nk, fx, fy, bx, by, area, do_var, &vi, &vv)) {  \
                                orow[ii] = (T)vi;                                                \
                                if (do_var) vrow[ii] = (T)vv;                                    \
                                if (mask_out) {                                                  \
                                    int32_t bits = 0;                                            \
                                    if (A->mask_in) {                                            \
                                        if (do_full &&                                           \
                                            (!A->use_full_map ||                                 \
                                             A->full_map[(j0 >> RB_MAP_SHIFT) * A->map_cols +    \
                                                         (i0 >> RB_MAP_SHIFT)] != 0)) {          \
                                            int32_t mf = 0;                                      \
                                            for (int64_t b = 0; b < nk; b++) {                   \
                                                const int32_t *mr = A->src_mask + (by + b) * ms + bx; \
                                                for (int64_t a = 0; a < nk; a++) mf |= mr[a];    \
                                            }                                                    \
                                            bits = mf & (int32_t)A->full_bits;                   \
                                        }                                                        \
                                        if (mask_bilinear) {                                     \
                                            const int32_t *m0 = A->src_mask + j0 * ms + i0;      \
                                            bits |= m0[0] | m0[1] | m0[ms] | m0[ms + 1];         \
                                        } else if (!same) {                                      \
                                            bits |= rb_mask_footprint(A, i0, j0, fx, fy);        \
                                        }                                                        \
                                    }                                                            \
                                    mrow[ii] = bits;                                             \
                                }                                                                \
                                continue;                                                        \
                            }                                                                    \
                            int64_t xl, xh, yl, yh;                                              \
                            rb_weights(A, fx, wx, &xl, &xh);                                     \
                            rb_weights(A, fy, wy, &yl, &yh);                                     \
                            double sx = 0.0, sy = 0.0;                                           \
                            for (int64_t a = 0; a < nk; a++) {                                   \
                                sx += wx[a];                                                     \
                                sy += wy[a];                                                     \
                            }                                                                    \
                            const double scale = area / (sx * sy);                               \
                            double acc = 0.0;                                                    \
                            for (int64_t b = yl; b <= yh; b++) {                                 \
                                const T *r = src + (by + b) * ss + bx;                           \
                                double s = 0.0;                                                  \
                                for (int64_t a = xl; a <= xh; a++) s += wx[a] * (double)r[a];    \
                                acc += wy[b] * s;                                                \
                            }                                                                    \
                            orow[ii] = (T)(acc * scale);                                         \
                            if (do_var) {                                                        \
                                double accv = 0.0;                                               \
                                for (int64_t b = yl; b <= yh; b++) {                             \
                                    const T *r = svar + (by + b) * ss + bx;                      \
                                    double s = 0.0;                                              \
                                    for (int64_t a = xl; a <= xh; a++)                           \
                                        s += wx[a] * wx[a] * (double)r[a];                       \
                                    accv += wy[b] * wy[b] * s;                                   \
                                }                                                                \
                                vrow[ii] = (T)(accv * (scale * scale));                          \
                            }                                                                    \
                            if (mask_out)                                                        \
                                mrow[ii] = rb_mask_bits(A, i0, j0, fx, fy, xl, xh, yl, yh, same, \
                                                        do_full);                                \
                        }                                                                        \
                        i = stop;                                                                \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        return good;                                                                             \
    }

#ifdef RB_HAVE_AVX2_PATH
RB_DEFINE_ROWS(rows_f32_avx2_nk4, float, 1, rb_vec_nk4, RB_AVX2)
RB_DEFINE_ROWS(rows_f32_avx2_nk6, float, 1, rb_vec_nk6, RB_AVX2)
RB_DEFINE_ROWS(rows_f32_avx2_nk8, float, 1, rb_vec_nk8, RB_AVX2)
RB_DEFINE_ROWS(rows_f32_avx2_nk10, float, 1, rb_vec_nk10, RB_AVX2)
#endif
RB_DEFINE_ROWS(rows_f32_generic, float, 0, rb_vec_none, )
RB_DEFINE_ROWS(rows_f64_generic, double, 0, rb_vec_none, )

/* 1 when the CPU has AVX2 and FMA (vector hot path), else 0. */
int64_t rb_has_avx2(void) {
#ifdef RB_HAVE_AVX2_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Warp destination rows [row_start, row_stop) of float32 data; returns the good pixel count.
 * scratch holds 3 * nnx doubles (one buffer per calling thread). */
int64_t rb_warp_rows_f32(const rb_args *A, int64_t row_start, int64_t row_stop, double *scratch) {
#ifdef RB_HAVE_AVX2_PATH
    static int have = -1;
    if (have < 0) have = (int)rb_has_avx2();
    if (have && A->kind == RB_KIND_LANCZOS) {
        switch (A->n) {
        case 2:
            return rows_f32_avx2_nk4(A, row_start, row_stop, scratch);
        case 3:
            return rows_f32_avx2_nk6(A, row_start, row_stop, scratch);
        case 4:
            return rows_f32_avx2_nk8(A, row_start, row_stop, scratch);
        case 5:
            return rows_f32_avx2_nk10(A, row_start, row_stop, scratch);
        default:
            break;
        }
    }
#endif
    return rows_f32_generic(A, row_start, row_stop, scratch);
}

/* The same for float64 data (scalar path). */
int64_t rb_warp_rows_f64(const rb_args *A, int64_t row_start, int64_t row_stop, double *scratch) {
    return rows_f64_generic(A, row_start, row_stop, scratch);
}

/* Coarse "bits nearby" map: out[R, C] = 1 when (mask & bits) is nonzero anywhere in source block
 * (R, C) (RB_MAP_BLOCK pixels square) or one of its 8 neighbours.  scratch holds
 * (nby + 2) * (nbx + 2) bytes.  Any kernel footprint (at most 10 taps < RB_MAP_BLOCK) of a pixel
 * whose floor position is in block (R, C) lies in those 9 blocks. */
void rb_block_map(const int32_t *mask, int64_t h, int64_t w, int64_t stride, int32_t bits,
                  uint8_t *scratch, uint8_t *out) {
    const int64_t nby = (h + RB_MAP_BLOCK - 1) / RB_MAP_BLOCK;
    const int64_t nbx = (w + RB_MAP_BLOCK - 1) / RB_MAP_BLOCK;
    const int64_t sc = nbx + 2;
    memset(scratch, 0, (size_t)((nby + 2) * sc));
    for (int64_t r = 0; r < h; r++) {
        const int32_t *row = mask + r * stride;
        uint8_t *blk = scratch + (r / RB_MAP_BLOCK + 1) * sc + 1;
        for (int64_t cb = 0; cb < nbx; cb++) {
            const int64_t c0 = cb * RB_MAP_BLOCK, c1 = rb_min(c0 + RB_MAP_BLOCK, w);
            int32_t acc = 0;
            for (int64_t c = c0; c < c1; c++) acc |= row[c];
            if (acc & bits) blk[cb] = 1;
        }
    }
    for (int64_t rb = 0; rb < nby; rb++) {
        for (int64_t cb = 0; cb < nbx; cb++) {
            const uint8_t *s0 = scratch + rb * sc + cb, *s1 = s0 + sc, *s2 = s1 + sc;
            out[rb * nbx + cb] =
                (uint8_t)(s0[0] | s0[1] | s0[2] | s1[0] | s1[1] | s1[2] | s2[0] | s2[1] | s2[2]);
        }
    }
}

/* ABI version checked by the loader. */
int64_t rb_abi_version(void) { return 4; }
