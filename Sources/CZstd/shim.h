#ifndef PINREPLAY_CZSTD_SHIM_H
#define PINREPLAY_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif
