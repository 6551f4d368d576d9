// mlxc.cpp: the C ABI of mlxc.h over MLX's C++ API.
//
// Each exported function catches every C++ exception, hands its message to
// the installed error handler and returns 1 (or an empty handle), exactly as
// mlx-c does, so a caller can treat this library and the official libmlxc
// alike.

#include "mlxc.h"

#include <complex>
#include <sstream>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mlx/mlx.h"
#include "mlx/backend/metal/metal.h"

namespace mx = mlx::core;

namespace {

void default_handler(const char* msg, void*) {
  std::printf("MLX error: %s\n", msg);
  std::exit(-1);
}

mlx_error_handler_func g_handler = default_handler;
std::shared_ptr<void> g_handler_data;

void report(const char* msg) {
  g_handler(msg, g_handler_data.get());
}

// guarded runs f and turns any exception into a reported error and a 1.
template <class F>
int guarded(F&& f) noexcept {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    report(e.what());
  } catch (...) {
    report("unknown C++ exception");
  }
  return 1;
}

// guarded_value is guarded for functions that return a value (a handle):
// on error it reports and returns fallback.
template <class T, class F>
T guarded_value(T fallback, F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    report(e.what());
  } catch (...) {
    report("unknown C++ exception");
  }
  return fallback;
}

template <class T, class H>
T& get(H h, const char* what) {
  if (!h.ctx) {
    throw std::invalid_argument(std::string("empty ") + what + " handle");
  }
  return *static_cast<T*>(h.ctx);
}

mx::array& arr(mlx_array a) {
  return get<mx::array>(a, "mlx_array");
}

mx::Stream& stream(mlx_stream s) {
  return get<mx::Stream>(s, "mlx_stream (pass a default CPU or GPU stream)");
}

std::vector<mx::array>& vec(mlx_vector_array v) {
  return get<std::vector<mx::array>>(v, "mlx_vector_array");
}

template <class T, class H, class V>
void put(H* res, V&& value) {
  if (!res) {
    throw std::invalid_argument("null result pointer");
  }
  if (res->ctx) {
    *static_cast<T*>(res->ctx) = std::forward<V>(value);
  } else {
    res->ctx = new T(std::forward<V>(value));
  }
}

void put_array(mlx_array* res, mx::array value) {
  put<mx::array>(res, std::move(value));
}

void put_vector(mlx_vector_array* res, std::vector<mx::array> value) {
  put<std::vector<mx::array>>(res, std::move(value));
}

mx::Dtype to_dtype(mlx_dtype d) {
  switch (d) {
    case MLX_BOOL:
      return mx::bool_;
    case MLX_UINT8:
      return mx::uint8;
    case MLX_UINT16:
      return mx::uint16;
    case MLX_UINT32:
      return mx::uint32;
    case MLX_UINT64:
      return mx::uint64;
    case MLX_INT8:
      return mx::int8;
    case MLX_INT16:
      return mx::int16;
    case MLX_INT32:
      return mx::int32;
    case MLX_INT64:
      return mx::int64;
    case MLX_FLOAT16:
      return mx::float16;
    case MLX_FLOAT32:
      return mx::float32;
    case MLX_FLOAT64:
      return mx::float64;
    case MLX_BFLOAT16:
      return mx::bfloat16;
    case MLX_COMPLEX64:
      return mx::complex64;
  }
  throw std::invalid_argument("unknown mlx_dtype " + std::to_string(int(d)));
}

mlx_dtype from_dtype(mx::Dtype d) {
  switch (d.val()) {
    case mx::Dtype::Val::bool_:
      return MLX_BOOL;
    case mx::Dtype::Val::uint8:
      return MLX_UINT8;
    case mx::Dtype::Val::uint16:
      return MLX_UINT16;
    case mx::Dtype::Val::uint32:
      return MLX_UINT32;
    case mx::Dtype::Val::uint64:
      return MLX_UINT64;
    case mx::Dtype::Val::int8:
      return MLX_INT8;
    case mx::Dtype::Val::int16:
      return MLX_INT16;
    case mx::Dtype::Val::int32:
      return MLX_INT32;
    case mx::Dtype::Val::int64:
      return MLX_INT64;
    case mx::Dtype::Val::float16:
      return MLX_FLOAT16;
    case mx::Dtype::Val::float32:
      return MLX_FLOAT32;
    case mx::Dtype::Val::float64:
      return MLX_FLOAT64;
    case mx::Dtype::Val::bfloat16:
      return MLX_BFLOAT16;
    case mx::Dtype::Val::complex64:
      return MLX_COMPLEX64;
  }
  throw std::invalid_argument("MLX dtype with no mlx_dtype value");
}

mx::Shape to_shape(const int* dims, size_t n) {
  if (n > 0 && !dims) {
    throw std::invalid_argument("null shape pointer with non-zero length");
  }
  return mx::Shape(dims, dims + n);
}

std::vector<int> to_ints(const int* v, size_t n) {
  if (n > 0 && !v) {
    throw std::invalid_argument("null pointer with non-zero length");
  }
  return std::vector<int>(v, v + n);
}

std::optional<int> opt(mlx_optional_int o) {
  return o.has_value ? std::optional<int>(o.value) : std::nullopt;
}

std::optional<mx::array> opt_array(mlx_array a) {
  return a.ctx ? std::optional<mx::array>(arr(a)) : std::nullopt;
}

std::optional<mx::distributed::Group> opt_group(mlx_distributed_group g) {
  if (!g.ctx) {
    return std::nullopt;
  }
  return *static_cast<mx::distributed::Group*>(g.ctx);
}

// copy_data builds an array owning a copy of the bytes at data, in memory
// from MLX's own allocator (so that it is counted as active memory).
mx::array copy_data(const void* data, mx::Shape shape, mx::Dtype dt) {
  size_t n = 1;
  for (auto d : shape) {
    if (d < 0) {
      throw std::invalid_argument("negative dimension in shape");
    }
    n *= size_t(d);
  }
  size_t nbytes = n * dt.size();
  if (nbytes > 0 && !data) {
    throw std::invalid_argument("null data pointer for a non-empty array");
  }
  auto buf = mx::allocator::malloc(nbytes);
  if (nbytes > 0) {
    std::memcpy(buf.buffer().raw_ptr(), data, nbytes);
  }
  return mx::array(std::move(buf), std::move(shape), dt);
}

struct string_map_iter {
  std::unordered_map<std::string, std::string>* map;
  std::unordered_map<std::string, std::string>::iterator it;
};

struct array_map_iter {
  std::unordered_map<std::string, mx::array>* map;
  std::unordered_map<std::string, mx::array>::iterator it;
};

using array_map = std::unordered_map<std::string, mx::array>;
using string_map = std::unordered_map<std::string, std::string>;

} // namespace

extern "C" {

void mlx_set_error_handler(
    mlx_error_handler_func handler,
    void* data,
    void (*dtor)(void*)) {
  g_handler_data = dtor ? std::shared_ptr<void>(data, dtor)
                        : std::shared_ptr<void>(data, [](void*) {});
  g_handler = handler ? handler : default_handler;
}

// ---- strings and version ----

mlx_string mlx_string_new(void) {
  return guarded_value<mlx_string>(
      {nullptr}, [] { return mlx_string{new std::string()}; });
}

const char* mlx_string_data(mlx_string str) {
  return guarded_value<const char*>(nullptr, [&] {
    return get<std::string>(str, "mlx_string").c_str();
  });
}

int mlx_string_free(mlx_string str) {
  return guarded([&] { delete static_cast<std::string*>(str.ctx); });
}

int mlx_version(mlx_string* str) {
  return guarded([&] { put<std::string>(str, std::string(mx::version())); });
}

// ---- arrays ----

size_t mlx_dtype_size(mlx_dtype dtype) {
  return guarded_value<size_t>(0, [&] { return to_dtype(dtype).size(); });
}

mlx_array mlx_array_new(void) {
  return mlx_array{nullptr};
}

int mlx_array_free(mlx_array a) {
  return guarded([&] { delete static_cast<mx::array*>(a.ctx); });
}

int mlx_array_tostring(mlx_string* str, const mlx_array a) {
  return guarded([&] {
    std::ostringstream os;
    os << arr(a);
    put<std::string>(str, os.str());
  });
}

mlx_array mlx_array_new_data(
    const void* data,
    const int* shape,
    int dim,
    mlx_dtype dtype) {
  return guarded_value<mlx_array>({nullptr}, [&] {
    if (dim < 0) {
      throw std::invalid_argument("negative number of dimensions");
    }
    return mlx_array{new mx::array(
        copy_data(data, to_shape(shape, size_t(dim)), to_dtype(dtype)))};
  });
}

mlx_array mlx_array_new_data_managed_payload(
    void* data,
    const int* shape,
    int dim,
    mlx_dtype dtype,
    void* payload,
    void (*dtor)(void*)) {
  return guarded_value<mlx_array>({nullptr}, [&] {
    if (dim < 0) {
      throw std::invalid_argument("negative number of dimensions");
    }
    if (!data) {
      throw std::invalid_argument("null data pointer");
    }
    std::function<void(void*)> deleter = [payload, dtor](void*) {
      if (dtor) {
        dtor(payload);
      }
    };
    return mlx_array{new mx::array(
        data, to_shape(shape, size_t(dim)), to_dtype(dtype), deleter)};
  });
}

mlx_array mlx_array_new_data_managed(
    void* data,
    const int* shape,
    int dim,
    mlx_dtype dtype,
    void (*dtor)(void*)) {
  return mlx_array_new_data_managed_payload(
      data, shape, dim, dtype, data, dtor);
}

int mlx_array_set(mlx_array* res, const mlx_array src) {
  return guarded([&] { put_array(res, arr(src)); });
}

size_t mlx_array_itemsize(const mlx_array a) {
  return guarded_value<size_t>(0, [&] { return arr(a).itemsize(); });
}

size_t mlx_array_size(const mlx_array a) {
  return guarded_value<size_t>(0, [&] { return arr(a).size(); });
}

size_t mlx_array_nbytes(const mlx_array a) {
  return guarded_value<size_t>(0, [&] { return arr(a).nbytes(); });
}

size_t mlx_array_ndim(const mlx_array a) {
  return guarded_value<size_t>(0, [&] { return arr(a).ndim(); });
}

const int* mlx_array_shape(const mlx_array a) {
  return guarded_value<const int*>(
      nullptr, [&] { return arr(a).shape().data(); });
}

mlx_dtype mlx_array_dtype(const mlx_array a) {
  return guarded_value<mlx_dtype>(
      MLX_BOOL, [&] { return from_dtype(arr(a).dtype()); });
}

int mlx_array_eval(mlx_array a) {
  return guarded([&] { arr(a).eval(); });
}

const uint8_t* mlx_array_data_uint8(const mlx_array a) {
  return guarded_value<const uint8_t*>(
      nullptr, [&] { return arr(a).data<uint8_t>(); });
}

int _mlx_array_new_uninitialized(
    mlx_array* res,
    const int* shape,
    size_t shape_num,
    mlx_dtype dtype) {
  return guarded([&] {
    auto sh = to_shape(shape, shape_num);
    auto dt = to_dtype(dtype);
    size_t n = 1;
    for (auto d : sh) {
      if (d < 0) {
        throw std::invalid_argument("negative dimension in shape");
      }
      n *= size_t(d);
    }
    put_array(res, mx::array(mx::allocator::malloc(n * dt.size()), std::move(sh), dt));
  });
}

int _mlx_array_is_row_contiguous(bool* res, const mlx_array a) {
  return guarded([&] { *res = arr(a).flags().row_contiguous; });
}

// ---- vectors ----

mlx_vector_array mlx_vector_array_new(void) {
  return guarded_value<mlx_vector_array>(
      {nullptr}, [] { return mlx_vector_array{new std::vector<mx::array>()}; });
}

int mlx_vector_array_free(mlx_vector_array v) {
  return guarded([&] { delete static_cast<std::vector<mx::array>*>(v.ctx); });
}

mlx_vector_array mlx_vector_array_new_data(const mlx_array* data, size_t n) {
  return guarded_value<mlx_vector_array>({nullptr}, [&] {
    auto out = std::make_unique<std::vector<mx::array>>();
    out->reserve(n);
    for (size_t i = 0; i < n; i++) {
      out->push_back(arr(data[i]));
    }
    return mlx_vector_array{out.release()};
  });
}

int mlx_vector_array_append_value(mlx_vector_array v, const mlx_array val) {
  return guarded([&] { vec(v).push_back(arr(val)); });
}

size_t mlx_vector_array_size(mlx_vector_array v) {
  return guarded_value<size_t>(0, [&] { return vec(v).size(); });
}

int mlx_vector_array_get(
    mlx_array* res,
    const mlx_vector_array v,
    size_t idx) {
  return guarded([&] { put_array(res, vec(v).at(idx)); });
}

// ---- maps ----

mlx_map_string_to_array mlx_map_string_to_array_new(void) {
  return guarded_value<mlx_map_string_to_array>(
      {nullptr}, [] { return mlx_map_string_to_array{new array_map()}; });
}

int mlx_map_string_to_array_free(mlx_map_string_to_array m) {
  return guarded([&] { delete static_cast<array_map*>(m.ctx); });
}

int mlx_map_string_to_array_insert(
    mlx_map_string_to_array m,
    const char* key,
    const mlx_array value) {
  return guarded([&] {
    get<array_map>(m, "mlx_map_string_to_array")
        .insert_or_assign(std::string(key), arr(value));
  });
}

mlx_map_string_to_array_iterator mlx_map_string_to_array_iterator_new(
    mlx_map_string_to_array m) {
  return guarded_value<mlx_map_string_to_array_iterator>({nullptr}, [&] {
    auto& map = get<array_map>(m, "mlx_map_string_to_array");
    return mlx_map_string_to_array_iterator{
        new array_map_iter{&map, map.begin()}};
  });
}

int mlx_map_string_to_array_iterator_free(mlx_map_string_to_array_iterator it) {
  return guarded([&] { delete static_cast<array_map_iter*>(it.ctx); });
}

int mlx_map_string_to_array_iterator_next(
    const char** key,
    mlx_array* value,
    mlx_map_string_to_array_iterator it) {
  // mlx-c returns 2 at the end of the map, 1 on error, 0 otherwise.
  try {
    auto& state = get<array_map_iter>(it, "map iterator");
    if (state.it == state.map->end()) {
      return 2;
    }
    *key = state.it->first.c_str();
    put_array(value, state.it->second);
    ++state.it;
    return 0;
  } catch (const std::exception& e) {
    report(e.what());
    return 1;
  }
}

mlx_map_string_to_string mlx_map_string_to_string_new(void) {
  return guarded_value<mlx_map_string_to_string>(
      {nullptr}, [] { return mlx_map_string_to_string{new string_map()}; });
}

int mlx_map_string_to_string_free(mlx_map_string_to_string m) {
  return guarded([&] { delete static_cast<string_map*>(m.ctx); });
}

int mlx_map_string_to_string_insert(
    mlx_map_string_to_string m,
    const char* key,
    const char* value) {
  return guarded([&] {
    get<string_map>(m, "mlx_map_string_to_string")
        .insert_or_assign(std::string(key), std::string(value));
  });
}

mlx_map_string_to_string_iterator mlx_map_string_to_string_iterator_new(
    mlx_map_string_to_string m) {
  return guarded_value<mlx_map_string_to_string_iterator>({nullptr}, [&] {
    auto& map = get<string_map>(m, "mlx_map_string_to_string");
    return mlx_map_string_to_string_iterator{
        new string_map_iter{&map, map.begin()}};
  });
}

int mlx_map_string_to_string_iterator_free(
    mlx_map_string_to_string_iterator it) {
  return guarded([&] { delete static_cast<string_map_iter*>(it.ctx); });
}

int mlx_map_string_to_string_iterator_next(
    const char** key,
    const char** value,
    mlx_map_string_to_string_iterator it) {
  try {
    auto& state = get<string_map_iter>(it, "map iterator");
    if (state.it == state.map->end()) {
      return 2;
    }
    *key = state.it->first.c_str();
    *value = state.it->second.c_str();
    ++state.it;
    return 0;
  } catch (const std::exception& e) {
    report(e.what());
    return 1;
  }
}

// ---- devices and streams ----

static mx::Device::DeviceType to_device_type(mlx_device_type t) {
  return t == MLX_GPU ? mx::Device::gpu : mx::Device::cpu;
}

mlx_device mlx_device_new_type(mlx_device_type type, int index) {
  return guarded_value<mlx_device>({nullptr}, [&] {
    return mlx_device{new mx::Device(to_device_type(type), index)};
  });
}

int mlx_device_free(mlx_device dev) {
  return guarded([&] { delete static_cast<mx::Device*>(dev.ctx); });
}

int mlx_get_default_device(mlx_device* dev) {
  return guarded([&] { put<mx::Device>(dev, mx::default_device()); });
}

int mlx_set_default_device(mlx_device dev) {
  return guarded(
      [&] { mx::set_default_device(get<mx::Device>(dev, "mlx_device")); });
}

int mlx_device_get_type(mlx_device_type* type, mlx_device dev) {
  return guarded([&] {
    *type = get<mx::Device>(dev, "mlx_device").type == mx::Device::gpu
        ? MLX_GPU
        : MLX_CPU;
  });
}

int mlx_device_get_index(int* index, mlx_device dev) {
  return guarded([&] { *index = get<mx::Device>(dev, "mlx_device").index; });
}

int mlx_device_is_available(bool* avail, mlx_device dev) {
  return guarded(
      [&] { *avail = mx::is_available(get<mx::Device>(dev, "mlx_device")); });
}

int mlx_device_count(int* count, mlx_device_type type) {
  return guarded([&] { *count = mx::device_count(to_device_type(type)); });
}

mlx_stream mlx_stream_new_device(mlx_device dev) {
  return guarded_value<mlx_stream>({nullptr}, [&] {
    return mlx_stream{
        new mx::Stream(mx::new_stream(get<mx::Device>(dev, "mlx_device")))};
  });
}

int mlx_stream_free(mlx_stream s) {
  return guarded([&] { delete static_cast<mx::Stream*>(s.ctx); });
}

int mlx_stream_get_device(mlx_device* dev, mlx_stream s) {
  return guarded([&] { put<mx::Device>(dev, stream(s).device); });
}

int mlx_synchronize(mlx_stream s) {
  return guarded([&] { mx::synchronize(stream(s)); });
}

mlx_stream mlx_default_cpu_stream_new(void) {
  return guarded_value<mlx_stream>({nullptr}, [] {
    return mlx_stream{new mx::Stream(mx::default_stream(mx::Device::cpu))};
  });
}

mlx_stream mlx_default_gpu_stream_new(void) {
  return guarded_value<mlx_stream>({nullptr}, [] {
    return mlx_stream{new mx::Stream(mx::default_stream(mx::Device::gpu))};
  });
}

int mlx_metal_is_available(bool* res) {
  return guarded([&] { *res = mx::metal::is_available(); });
}

int mlx_cuda_is_available(bool* res) {
  // A GPU that is not Metal is CUDA: MLX has no third GPU back-end, and this
  // avoids a link-time dependency on the CUDA back-end's own symbols.
  return guarded([&] {
    *res = mx::is_available(mx::Device::gpu) && !mx::metal::is_available();
  });
}

// ---- transforms ----

int mlx_eval(const mlx_vector_array outputs) {
  return guarded([&] { mx::eval(vec(outputs)); });
}

int mlx_async_eval(const mlx_vector_array outputs) {
  return guarded([&] { mx::async_eval(vec(outputs)); });
}

// ---- memory ----

int mlx_clear_cache(void) {
  return guarded([] { mx::clear_cache(); });
}

int mlx_get_active_memory(size_t* res) {
  return guarded([&] { *res = mx::get_active_memory(); });
}

int mlx_get_cache_memory(size_t* res) {
  return guarded([&] { *res = mx::get_cache_memory(); });
}

int mlx_get_memory_limit(size_t* res) {
  return guarded([&] { *res = mx::get_memory_limit(); });
}

int mlx_get_peak_memory(size_t* res) {
  return guarded([&] { *res = mx::get_peak_memory(); });
}

int mlx_reset_peak_memory(void) {
  return guarded([] { mx::reset_peak_memory(); });
}

int mlx_set_cache_limit(size_t* res, size_t limit) {
  return guarded([&] { *res = mx::set_cache_limit(limit); });
}

int mlx_set_memory_limit(size_t* res, size_t limit) {
  return guarded([&] { *res = mx::set_memory_limit(limit); });
}

int mlx_set_wired_limit(size_t* res, size_t limit) {
  return guarded([&] { *res = mx::set_wired_limit(limit); });
}

// ---- ops ----

int mlx_slice(
    mlx_array* res,
    const mlx_array a,
    const int* start,
    size_t start_num,
    const int* stop,
    size_t stop_num,
    const int* strides,
    size_t strides_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::slice(
            arr(a),
            to_shape(start, start_num),
            to_shape(stop, stop_num),
            to_shape(strides, strides_num),
            stream(s)));
  });
}

int mlx_split(
    mlx_vector_array* res,
    const mlx_array a,
    int num_splits,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_vector(res, mx::split(arr(a), num_splits, axis, stream(s)));
  });
}

int mlx_split_sections(
    mlx_vector_array* res,
    const mlx_array a,
    const int* indices,
    size_t indices_num,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_vector(
        res,
        mx::split(arr(a), to_shape(indices, indices_num), axis, stream(s)));
  });
}

int mlx_concatenate_axis(
    mlx_array* res,
    const mlx_vector_array arrays,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::concatenate(vec(arrays), axis, stream(s)));
  });
}

int mlx_contiguous(
    mlx_array* res,
    const mlx_array a,
    bool allow_col_major,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::contiguous(arr(a), allow_col_major, stream(s)));
  });
}

int mlx_reshape(
    mlx_array* res,
    const mlx_array a,
    const int* shape,
    size_t shape_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::reshape(arr(a), to_shape(shape, shape_num), stream(s)));
  });
}

int mlx_transpose_axes(
    mlx_array* res,
    const mlx_array a,
    const int* axes,
    size_t axes_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::transpose(arr(a), to_ints(axes, axes_num), stream(s)));
  });
}

int mlx_astype(
    mlx_array* res,
    const mlx_array a,
    mlx_dtype dtype,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::astype(arr(a), to_dtype(dtype), stream(s)));
  });
}

int mlx_view(
    mlx_array* res,
    const mlx_array a,
    mlx_dtype dtype,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::view(arr(a), to_dtype(dtype), stream(s))); });
}

// The element-wise and matrix products share a signature.
#define MLXC_BINARY(op)                                                    \
  int mlx_##op(                                                           \
      mlx_array* res,                                                     \
      const mlx_array a,                                                  \
      const mlx_array b,                                                  \
      const mlx_stream s) {                                               \
    return guarded([&] { put_array(res, mx::op(arr(a), arr(b), stream(s))); }); \
  }

MLXC_BINARY(matmul)
MLXC_BINARY(add)
MLXC_BINARY(multiply)

int mlx_sum_axes(
    mlx_array* res,
    const mlx_array a,
    const int* axes,
    size_t axes_num,
    bool keepdims,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::sum(arr(a), to_ints(axes, axes_num), keepdims, stream(s)));
  });
}

int mlx_quantize(
    mlx_vector_array* res,
    const mlx_array w,
    mlx_optional_int group_size,
    mlx_optional_int bits,
    const char* mode,
    const mlx_array global_scale,
    const mlx_stream s) {
  return guarded([&] {
    put_vector(
        res,
        mx::quantize(
            arr(w),
            opt(group_size),
            opt(bits),
            mode ? mode : "affine",
            opt_array(global_scale),
            stream(s)));
  });
}

int mlx_dequantize(
    mlx_array* res,
    const mlx_array w,
    const mlx_array scales,
    const mlx_array biases,
    mlx_optional_int group_size,
    mlx_optional_int bits,
    const char* mode,
    const mlx_array global_scale,
    mlx_optional_dtype dtype,
    const mlx_stream s) {
  return guarded([&] {
    std::optional<mx::Dtype> dt = dtype.has_value
        ? std::optional<mx::Dtype>(to_dtype(dtype.value))
        : std::nullopt;
    put_array(
        res,
        mx::dequantize(
            arr(w),
            arr(scales),
            opt_array(biases),
            opt(group_size),
            opt(bits),
            mode ? mode : "affine",
            opt_array(global_scale),
            dt,
            stream(s)));
  });
}

int mlx_quantized_matmul(
    mlx_array* res,
    const mlx_array x,
    const mlx_array w,
    const mlx_array scales,
    const mlx_array biases,
    bool transpose,
    mlx_optional_int group_size,
    mlx_optional_int bits,
    const char* mode,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::quantized_matmul(
            arr(x),
            arr(w),
            arr(scales),
            opt_array(biases),
            transpose,
            opt(group_size),
            opt(bits),
            mode ? mode : "affine",
            stream(s)));
  });
}

int mlx_take_axis(
    mlx_array* res,
    const mlx_array a,
    const mlx_array indices,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::take(arr(a), arr(indices), axis, stream(s)));
  });
}

int mlx_zeros(
    mlx_array* res,
    const int* shape,
    size_t shape_num,
    mlx_dtype dtype,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::zeros(to_shape(shape, shape_num), to_dtype(dtype), stream(s)));
  });
}

// ---- ops for inference ----

#define MLXC_UNARY(name, fn)                                                 \
  int mlx_##name(mlx_array* res, const mlx_array a, const mlx_stream s) {    \
    return guarded([&] { put_array(res, mx::fn(arr(a), stream(s))); });      \
  }

MLXC_UNARY(sigmoid, sigmoid)
MLXC_UNARY(exp, exp)
MLXC_UNARY(log, log)
MLXC_UNARY(negative, negative)
MLXC_UNARY(sqrt, sqrt)
MLXC_UNARY(rsqrt, rsqrt)
MLXC_UNARY(square, square)
MLXC_UNARY(abs, abs)
MLXC_UNARY(tanh, tanh)
MLXC_UNARY(sin, sin)
MLXC_UNARY(cos, cos)
MLXC_UNARY(erf, erf)
MLXC_UNARY(logical_not, logical_not)
MLXC_UNARY(floor, floor)
MLXC_UNARY(ceil, ceil)
MLXC_UNARY(copy, copy)

#define MLXC_BINARY_OP(name)                                               \
  int mlx_##name(                                                          \
      mlx_array* res,                                                      \
      const mlx_array a,                                                   \
      const mlx_array b,                                                   \
      const mlx_stream s) {                                                \
    return guarded(                                                        \
        [&] { put_array(res, mx::name(arr(a), arr(b), stream(s))); });     \
  }

MLXC_BINARY_OP(subtract)
MLXC_BINARY_OP(divide)
MLXC_BINARY_OP(floor_divide)
MLXC_BINARY_OP(power)
MLXC_BINARY_OP(maximum)
MLXC_BINARY_OP(minimum)
MLXC_BINARY_OP(remainder)
MLXC_BINARY_OP(equal)
MLXC_BINARY_OP(not_equal)
MLXC_BINARY_OP(greater)
MLXC_BINARY_OP(greater_equal)
MLXC_BINARY_OP(less)
MLXC_BINARY_OP(less_equal)
MLXC_BINARY_OP(logical_and)
MLXC_BINARY_OP(logical_or)

int mlx_where(
    mlx_array* res,
    const mlx_array condition,
    const mlx_array x,
    const mlx_array y,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::where(arr(condition), arr(x), arr(y), stream(s)));
  });
}

int mlx_clip(
    mlx_array* res,
    const mlx_array a,
    const mlx_array a_min,
    const mlx_array a_max,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::clip(arr(a), opt_array(a_min), opt_array(a_max), stream(s)));
  });
}

int mlx_addmm(
    mlx_array* res,
    const mlx_array c,
    const mlx_array a,
    const mlx_array b,
    float alpha,
    float beta,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::addmm(arr(c), arr(a), arr(b), alpha, beta, stream(s)));
  });
}

#define MLXC_REDUCE_AXES(name, fn, flag)                                     \
  int mlx_##name(                                                            \
      mlx_array* res,                                                        \
      const mlx_array a,                                                     \
      const int* axes,                                                       \
      size_t axes_num,                                                       \
      bool flag,                                                             \
      const mlx_stream s) {                                                  \
    return guarded([&] {                                                     \
      put_array(                                                             \
          res, mx::fn(arr(a), to_ints(axes, axes_num), flag, stream(s)));    \
    });                                                                      \
  }

MLXC_REDUCE_AXES(mean_axes, mean, keepdims)
MLXC_REDUCE_AXES(max_axes, max, keepdims)
MLXC_REDUCE_AXES(min_axes, min, keepdims)
MLXC_REDUCE_AXES(logsumexp_axes, logsumexp, keepdims)
MLXC_REDUCE_AXES(softmax_axes, softmax, precise)

int mlx_argmax_axis(
    mlx_array* res,
    const mlx_array a,
    int axis,
    bool keepdims,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::argmax(arr(a), axis, keepdims, stream(s))); });
}

int mlx_argmin_axis(
    mlx_array* res,
    const mlx_array a,
    int axis,
    bool keepdims,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::argmin(arr(a), axis, keepdims, stream(s))); });
}

int mlx_cumsum(
    mlx_array* res,
    const mlx_array a,
    int axis,
    bool reverse,
    bool inclusive,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::cumsum(arr(a), axis, reverse, inclusive, stream(s)));
  });
}

int mlx_argpartition_axis(
    mlx_array* res,
    const mlx_array a,
    int kth,
    int axis,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::argpartition(arr(a), kth, axis, stream(s))); });
}

int mlx_argsort_axis(
    mlx_array* res,
    const mlx_array a,
    int axis,
    const mlx_stream s) {
  return guarded([&] { put_array(res, mx::argsort(arr(a), axis, stream(s))); });
}

int mlx_sort_axis(
    mlx_array* res,
    const mlx_array a,
    int axis,
    const mlx_stream s) {
  return guarded([&] { put_array(res, mx::sort(arr(a), axis, stream(s))); });
}

int mlx_topk_axis(
    mlx_array* res,
    const mlx_array a,
    int k,
    int axis,
    const mlx_stream s) {
  return guarded([&] { put_array(res, mx::topk(arr(a), k, axis, stream(s))); });
}

int mlx_take_along_axis(
    mlx_array* res,
    const mlx_array a,
    const mlx_array indices,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::take_along_axis(arr(a), arr(indices), axis, stream(s)));
  });
}

int mlx_put_along_axis(
    mlx_array* res,
    const mlx_array a,
    const mlx_array indices,
    const mlx_array values,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::put_along_axis(
            arr(a), arr(indices), arr(values), axis, stream(s)));
  });
}

int mlx_scatter_add_axis(
    mlx_array* res,
    const mlx_array a,
    const mlx_array indices,
    const mlx_array values,
    int axis,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::scatter_add_axis(
            arr(a), arr(indices), arr(values), axis, stream(s)));
  });
}

int mlx_slice_update(
    mlx_array* res,
    const mlx_array src,
    const mlx_array update,
    const int* start,
    size_t start_num,
    const int* stop,
    size_t stop_num,
    const int* strides,
    size_t strides_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::slice_update(
            arr(src),
            arr(update),
            to_shape(start, start_num),
            to_shape(stop, stop_num),
            to_shape(strides, strides_num),
            stream(s)));
  });
}

int mlx_expand_dims_axes(
    mlx_array* res,
    const mlx_array a,
    const int* axes,
    size_t axes_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::expand_dims(arr(a), to_ints(axes, axes_num), stream(s)));
  });
}

int mlx_squeeze_axes(
    mlx_array* res,
    const mlx_array a,
    const int* axes,
    size_t axes_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::squeeze(arr(a), to_ints(axes, axes_num), stream(s)));
  });
}

int mlx_broadcast_to(
    mlx_array* res,
    const mlx_array a,
    const int* shape,
    size_t shape_num,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::broadcast_to(arr(a), to_shape(shape, shape_num), stream(s)));
  });
}

int mlx_swapaxes(
    mlx_array* res,
    const mlx_array a,
    int axis1,
    int axis2,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::swapaxes(arr(a), axis1, axis2, stream(s))); });
}

int mlx_stack_axis(
    mlx_array* res,
    const mlx_vector_array arrays,
    int axis,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::stack(vec(arrays), axis, stream(s))); });
}

int mlx_flatten(
    mlx_array* res,
    const mlx_array a,
    int start_axis,
    int end_axis,
    const mlx_stream s) {
  return guarded([&] {
    put_array(res, mx::flatten(arr(a), start_axis, end_axis, stream(s)));
  });
}

int mlx_arange(
    mlx_array* res,
    double start,
    double stop,
    double step,
    mlx_dtype dtype,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::arange(start, stop, step, to_dtype(dtype), stream(s)));
  });
}

int mlx_full(
    mlx_array* res,
    const int* shape,
    size_t shape_num,
    const mlx_array vals,
    mlx_dtype dtype,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::full(
            to_shape(shape, shape_num), arr(vals), to_dtype(dtype), stream(s)));
  });
}

int mlx_ones(
    mlx_array* res,
    const int* shape,
    size_t shape_num,
    mlx_dtype dtype,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::ones(to_shape(shape, shape_num), to_dtype(dtype), stream(s)));
  });
}

int mlx_gather_mm(
    mlx_array* res,
    const mlx_array a,
    const mlx_array b,
    const mlx_array lhs_indices,
    const mlx_array rhs_indices,
    bool sorted_indices,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::gather_mm(
            arr(a),
            arr(b),
            opt_array(lhs_indices),
            opt_array(rhs_indices),
            sorted_indices,
            stream(s)));
  });
}

int mlx_gather_qmm(
    mlx_array* res,
    const mlx_array x,
    const mlx_array w,
    const mlx_array scales,
    const mlx_array biases,
    const mlx_array lhs_indices,
    const mlx_array rhs_indices,
    bool transpose,
    mlx_optional_int group_size,
    mlx_optional_int bits,
    const char* mode,
    bool sorted_indices,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::gather_qmm(
            arr(x),
            arr(w),
            arr(scales),
            opt_array(biases),
            opt_array(lhs_indices),
            opt_array(rhs_indices),
            transpose,
            opt(group_size),
            opt(bits),
            mode ? mode : "affine",
            std::nullopt,
            sorted_indices,
            stream(s)));
  });
}

int mlx_fast_rms_norm(
    mlx_array* res,
    const mlx_array x,
    const mlx_array weight,
    float eps,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::fast::rms_norm(arr(x), opt_array(weight), eps, stream(s)));
  });
}

int mlx_fast_layer_norm(
    mlx_array* res,
    const mlx_array x,
    const mlx_array weight,
    const mlx_array bias,
    float eps,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::fast::layer_norm(
            arr(x), opt_array(weight), opt_array(bias), eps, stream(s)));
  });
}

int mlx_fast_rope(
    mlx_array* res,
    const mlx_array x,
    int dims,
    bool traditional,
    mlx_optional_float base,
    float scale,
    int offset,
    const mlx_array freqs,
    const mlx_stream s) {
  return guarded([&] {
    std::optional<float> b =
        base.has_value ? std::optional<float>(base.value) : std::nullopt;
    put_array(
        res,
        mx::fast::rope(
            arr(x),
            dims,
            traditional,
            b,
            scale,
            offset,
            opt_array(freqs),
            stream(s)));
  });
}

int mlx_fast_scaled_dot_product_attention(
    mlx_array* res,
    const mlx_array queries,
    const mlx_array keys,
    const mlx_array values,
    float scale,
    const char* mask_mode,
    const mlx_array mask_arr,
    const mlx_array sinks,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::fast::scaled_dot_product_attention(
            arr(queries),
            arr(keys),
            arr(values),
            scale,
            mask_mode ? mask_mode : "",
            opt_array(mask_arr),
            opt_array(sinks),
            false,
            stream(s)));
  });
}

int mlx_random_seed(uint64_t seed) {
  return guarded([&] { mx::random::seed(seed); });
}

int mlx_random_key(mlx_array* res, uint64_t seed) {
  return guarded([&] { put_array(res, mx::random::key(seed)); });
}

int mlx_random_split_num(
    mlx_array* res,
    const mlx_array key,
    int num,
    const mlx_stream s) {
  return guarded(
      [&] { put_array(res, mx::random::split(arr(key), num, stream(s))); });
}

int mlx_random_categorical(
    mlx_array* res,
    const mlx_array logits,
    int axis,
    const mlx_array key,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::random::categorical(arr(logits), axis, opt_array(key), stream(s)));
  });
}

int mlx_random_uniform(
    mlx_array* res,
    const mlx_array low,
    const mlx_array high,
    const int* shape,
    size_t shape_num,
    mlx_dtype dtype,
    const mlx_array key,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::random::uniform(
            arr(low),
            arr(high),
            to_shape(shape, shape_num),
            to_dtype(dtype),
            opt_array(key),
            stream(s)));
  });
}

int mlx_random_gumbel(
    mlx_array* res,
    const int* shape,
    size_t shape_num,
    mlx_dtype dtype,
    const mlx_array key,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::random::gumbel(
            to_shape(shape, shape_num), to_dtype(dtype), opt_array(key), stream(s)));
  });
}

// ---- io ----

int mlx_load_safetensors(
    mlx_map_string_to_array* res_0,
    mlx_map_string_to_string* res_1,
    const char* file,
    const mlx_stream s) {
  return guarded([&] {
    if (!file) {
      throw std::invalid_argument("null file name");
    }
    auto loaded = mx::load_safetensors(std::string(file), stream(s));
    put<array_map>(res_0, std::move(loaded.first));
    put<string_map>(res_1, std::move(loaded.second));
  });
}

int mlx_save_safetensors(
    const char* file,
    const mlx_map_string_to_array param,
    const mlx_map_string_to_string metadata) {
  return guarded([&] {
    if (!file) {
      throw std::invalid_argument("null file name");
    }
    string_map meta;
    if (metadata.ctx) {
      meta = get<string_map>(metadata, "mlx_map_string_to_string");
    }
    mx::save_safetensors(
        std::string(file),
        get<array_map>(param, "mlx_map_string_to_array"),
        meta);
  });
}

// ---- distributed ----

mlx_distributed_group mlx_distributed_group_new(void) {
  return mlx_distributed_group{nullptr};
}

int mlx_distributed_group_free(mlx_distributed_group g) {
  return guarded(
      [&] { delete static_cast<mx::distributed::Group*>(g.ctx); });
}

int mlx_distributed_init(
    mlx_distributed_group* res,
    bool strict,
    const char* bk) {
  return guarded([&] {
    put<mx::distributed::Group>(
        res,
        bk ? mx::distributed::init(strict, std::string(bk))
           : mx::distributed::init(strict));
  });
}

int mlx_distributed_group_rank(mlx_distributed_group g) {
  return guarded_value<int>(0, [&] {
    return get<mx::distributed::Group>(g, "mlx_distributed_group").rank();
  });
}

int mlx_distributed_group_size(mlx_distributed_group g) {
  return guarded_value<int>(0, [&] {
    return get<mx::distributed::Group>(g, "mlx_distributed_group").size();
  });
}

int mlx_distributed_group_split(
    mlx_distributed_group* res,
    mlx_distributed_group g,
    int color,
    int key) {
  return guarded([&] {
    put<mx::distributed::Group>(
        res,
        get<mx::distributed::Group>(g, "mlx_distributed_group")
            .split(color, key));
  });
}

bool mlx_distributed_is_available(const char* bk) {
  return guarded_value<bool>(false, [&] {
    return bk ? mx::distributed::is_available(std::string(bk))
              : mx::distributed::is_available();
  });
}

// The collectives that take one array and give one back share a signature.
#define MLXC_COLLECTIVE(op)                                                  \
  int mlx_distributed_##op(                                                 \
      mlx_array* res,                                                       \
      const mlx_array x,                                                    \
      const mlx_distributed_group g,                                        \
      const mlx_stream s) {                                                 \
    return guarded([&] {                                                    \
      put_array(res, mx::distributed::op(arr(x), opt_group(g), stream(s))); \
    });                                                                     \
  }

MLXC_COLLECTIVE(all_sum)
MLXC_COLLECTIVE(all_gather)
MLXC_COLLECTIVE(all_max)
MLXC_COLLECTIVE(all_min)
MLXC_COLLECTIVE(sum_scatter)

int mlx_distributed_send(
    mlx_array* res,
    const mlx_array x,
    int dst,
    const mlx_distributed_group g,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res, mx::distributed::send(arr(x), dst, opt_group(g), stream(s)));
  });
}

int mlx_distributed_recv(
    mlx_array* res,
    const int* shape,
    size_t shape_num,
    mlx_dtype dtype,
    int src,
    const mlx_distributed_group g,
    const mlx_stream s) {
  return guarded([&] {
    put_array(
        res,
        mx::distributed::recv(
            to_shape(shape, shape_num),
            to_dtype(dtype),
            src,
            opt_group(g),
            stream(s)));
  });
}

} // extern "C"
