#include "test_util.h"

int test_failures = 0;
