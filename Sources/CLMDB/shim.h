#ifndef RASD_CLMDB_SHIM_H
#define RASD_CLMDB_SHIM_H
#include <lmdb.h>
#endif
