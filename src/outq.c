/* Placeholder: this unit is being written. */
#include "internal.h"
