/*
 * Driver for tests/test_psfmatch.py::test_cell_gram_is_memory_safe: calls rb_pm_cell_gram for
 * every stamp size 3..40, kernel half-width 1..6 and window offset, built with AddressSanitizer
 * (an out-of-bounds read or write aborts with a report).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int64_t rb_pm_cell_gram(const double *sci, int64_t ncell, int64_t p, const double *target,
                        const double *fun, int64_t nf, int64_t k, const int64_t *ix,
                        const int64_t *iy, const double *tr, int64_t nraw, int64_t o, int64_t q,
                        double *gram);
int main(void) {
    srand(1);
    long runs = 0;
    for (int64_t p = 3; p <= 40; p++)
      for (int64_t h = 1; h <= 6; h++)
        for (int64_t o = 0; 2 * o < p; o++) {
            int64_t q = p - 2 * o, k = 2 * h + 1, n = 2, nf = 3, nraw = 4;
            double *sci = malloc(sizeof(double) * n * p * p), *tg = malloc(sizeof(double) * n * q * q);
            double *fun = malloc(sizeof(double) * nf * k), tr[16] = {1, 0, 0, 0, .5, 1, 0, 0, 0, .2, 1, 0, .1, 0, .3, 1};
            double *g = malloc(sizeof(double) * n * 25);
            int64_t ix[4] = {0, 1, 2, 0}, iy[4] = {0, 0, 1, 2};
            for (int64_t i = 0; i < n * p * p; i++) sci[i] = rand() / (double)RAND_MAX;
            for (int64_t i = 0; i < n * q * q; i++) tg[i] = rand() / (double)RAND_MAX;
            for (int64_t i = 0; i < nf * k; i++) fun[i] = rand() / (double)RAND_MAX;
            if (rb_pm_cell_gram(sci, n, p, tg, fun, nf, k, ix, iy, tr, nraw, o, q, g) != 0) { printf("fail\n"); return 1; }
            free(sci); free(tg); free(fun); free(g); runs++;
        }
    printf("ok %ld configurations\n", runs);
    return 0;
}
