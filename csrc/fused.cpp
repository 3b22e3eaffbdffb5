#include "minigan.h"
namespace mg {
void bind_fused(py::module_ &m) {}
}
