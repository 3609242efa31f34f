// repo-butler: a C interface to pocketfft (header-only C++ version, BSD-3-Clause, vendored in
// _pocketfft/ with its licence) for the PSF-matching convolution.
//
// scipy ships the same library, but compiled for the baseline x86-64 (SSE2: four floats per
// vector).  Built here for the machine's CPU, an AVX2 build transforms eight lines at once, which
// halves the cost of the strided column passes.  warping/psfmatch/_fft.py compiles this file
// (twice on x86-64: with and without AVX2+FMA), loads the variant the CPU supports and falls
// back to scipy when no C++ compiler is available.
//
// Every function takes shapes as int64 arrays and strides in bytes, returns 0, or -1 after an
// exception (its message is then available from rb_fft_last_error, per thread).
#define POCKETFFT_NO_MULTITHREADING
#define POCKETFFT_CACHE_SIZE 16
#include "_pocketfft/pocketfft_hdronly.h"

#include <complex>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

namespace {

thread_local std::string last_error;

pocketfft::shape_t to_shape(const int64_t *shape, int64_t ndim) {
    return pocketfft::shape_t(shape, shape + ndim);
}

pocketfft::stride_t to_stride(const int64_t *stride, int64_t ndim) {
    return pocketfft::stride_t(stride, stride + ndim);
}

template <typename F> int64_t guarded(F &&f) {
    try {
        f();
        return 0;
    } catch (const std::exception &e) {
        last_error = e.what();
    } catch (...) {
        last_error = "unknown C++ exception";
    }
    return -1;
}

template <typename T>
int64_t c2c(const int64_t *shape, int64_t ndim, const int64_t *sin, const int64_t *sout,
            const int64_t *axes, int64_t naxes, int64_t forward, T fct, const void *in,
            void *out) {
    return guarded([&] {
        pocketfft::c2c<T>(to_shape(shape, ndim), to_stride(sin, ndim), to_stride(sout, ndim),
                          to_shape(axes, naxes), forward != 0,
                          static_cast<const std::complex<T> *>(in),
                          static_cast<std::complex<T> *>(out), fct, 1);
    });
}

template <typename T>
int64_t r2c(const int64_t *shape_in, int64_t ndim, const int64_t *sin, const int64_t *sout,
            const int64_t *axes, int64_t naxes, int64_t forward, T fct, const void *in,
            void *out) {
    return guarded([&] {
        pocketfft::r2c<T>(to_shape(shape_in, ndim), to_stride(sin, ndim), to_stride(sout, ndim),
                          to_shape(axes, naxes), forward != 0, static_cast<const T *>(in),
                          static_cast<std::complex<T> *>(out), fct, 1);
    });
}

template <typename T>
int64_t c2r(const int64_t *shape_out, int64_t ndim, const int64_t *sin, const int64_t *sout,
            int64_t axis, int64_t forward, T fct, const void *in, void *out) {
    return guarded([&] {
        pocketfft::c2r<T>(to_shape(shape_out, ndim), to_stride(sin, ndim),
                          to_stride(sout, ndim), static_cast<size_t>(axis), forward != 0,
                          static_cast<const std::complex<T> *>(in), static_cast<T *>(out), fct,
                          1);
    });
}

}  // namespace

extern "C" {

// Complex-to-complex transform over `axes` (c2c), real-to-complex (r2c: the last listed axis
// is the real one, shape_in is the real array's) and complex-to-real along one axis (c2r:
// shape_out is the real array's).  In-place c2c is allowed (in == out, same strides).
int64_t rb_fft_c2c_f32(const int64_t *shape, int64_t ndim, const int64_t *sin,
                       const int64_t *sout, const int64_t *axes, int64_t naxes, int64_t forward,
                       double fct, const void *in, void *out) {
    return c2c<float>(shape, ndim, sin, sout, axes, naxes, forward, static_cast<float>(fct), in,
                      out);
}
int64_t rb_fft_c2c_f64(const int64_t *shape, int64_t ndim, const int64_t *sin,
                       const int64_t *sout, const int64_t *axes, int64_t naxes, int64_t forward,
                       double fct, const void *in, void *out) {
    return c2c<double>(shape, ndim, sin, sout, axes, naxes, forward, fct, in, out);
}
int64_t rb_fft_r2c_f32(const int64_t *shape_in, int64_t ndim, const int64_t *sin,
                       const int64_t *sout, const int64_t *axes, int64_t naxes, int64_t forward,
                       double fct, const void *in, void *out) {
    return r2c<float>(shape_in, ndim, sin, sout, axes, naxes, forward, static_cast<float>(fct),
                      in, out);
}
int64_t rb_fft_r2c_f64(const int64_t *shape_in, int64_t ndim, const int64_t *sin,
                       const int64_t *sout, const int64_t *axes, int64_t naxes, int64_t forward,
                       double fct, const void *in, void *out) {
    return r2c<double>(shape_in, ndim, sin, sout, axes, naxes, forward, fct, in, out);
}
int64_t rb_fft_c2r_f32(const int64_t *shape_out, int64_t ndim, const int64_t *sin,
                       const int64_t *sout, int64_t axis, int64_t forward, double fct,
                       const void *in, void *out) {
    return c2r<float>(shape_out, ndim, sin, sout, axis, forward, static_cast<float>(fct), in,
                      out);
}
int64_t rb_fft_c2r_f64(const int64_t *shape_out, int64_t ndim, const int64_t *sin,
                       const int64_t *sout, int64_t axis, int64_t forward, double fct,
                       const void *in, void *out) {
    return c2r<double>(shape_out, ndim, sin, sout, axis, forward, fct, in, out);
}

// Message of the last failed call on this thread (empty if none).
const char *rb_fft_last_error(void) { return last_error.c_str(); }

// Vector width in floats that this build transforms lines with (8 for AVX2, 4 for SSE2).
int64_t rb_fft_vlen(void) { return static_cast<int64_t>(pocketfft::detail::VLEN<float>::val); }

// ABI version of these entry points, checked by the loader.
int64_t rb_fft_abi_version(void) { return 1; }

}  // extern "C"
