/* A minimal test harness for the firmware's C unit tests: CHECK counts failures, main returns nonzero. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdio.h>

extern int test_failures;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            test_failures++;                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)
#define TEST_DONE()                                                         \
    do {                                                                    \
        if (test_failures) fprintf(stderr, "%d failure(s)\n", test_failures); \
        return test_failures ? 1 : 0;                                       \
    } while (0)

#endif
