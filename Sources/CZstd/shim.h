#ifndef RASD_CZSTD_SHIM_H
#define RASD_CZSTD_SHIM_H
#include <zstd.h>
#endif
