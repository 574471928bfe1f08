// The train/validation split is a pure function of the document number, fraction and seed.
#include <doctest/doctest.h>

#include "tokenize/split.hpp"

using namespace dsk::tokenize;

TEST_CASE("the validation share is close to the fraction, and the edges are exact") {
  int validation = 0;
  for (uint64_t i = 0; i < 100000; ++i) validation += is_validation_document(i, 0.1, 0);
  CHECK(validation > 9500);
  CHECK(validation < 10500);
  for (uint64_t i = 0; i < 1000; ++i) {
    CHECK(!is_validation_document(i, 0.0, 3));
    CHECK(is_validation_document(i, 1.0, 3));
  }
}

TEST_CASE("the split depends on the seed, and not on anything else") {
  int same = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    CHECK(is_validation_document(i, 0.5, 1) == is_validation_document(i, 0.5, 1));
    same += is_validation_document(i, 0.5, 1) == is_validation_document(i, 0.5, 2);
  }
  CHECK(same < 600);
  // A larger fraction only adds documents to validation.
  for (uint64_t i = 0; i < 1000; ++i)
    if (is_validation_document(i, 0.1, 5)) CHECK(is_validation_document(i, 0.2, 5));
}
