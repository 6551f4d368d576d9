package mlx

// DeviceType is where MLX runs an operation.
type DeviceType int

const (
	CPU DeviceType = iota // mlx-c's MLX_CPU
	GPU                   // mlx-c's MLX_GPU: Metal on Apple silicon, CUDA on Linux
)

func (t DeviceType) String() string {
	if t == GPU {
		return "gpu"
	}
	return "cpu"
}

// Stream is one of MLX's default streams. Ops run on the package's default
// stream (see SetDefaultDevice); the distributed functions take a Stream
// because collectives over ring, jaccl and mpi must run on the CPU stream
// while nccl needs the GPU's.
type Stream struct {
	dev DeviceType
}

// CPUStream returns the default stream of the CPU.
func CPUStream() *Stream { return &Stream{dev: CPU} }

// GPUStream returns the default stream of the GPU (using it is an error
// where there is none).
func GPUStream() *Stream { return &Stream{dev: GPU} }

// Device is the device type of the stream; a nil Stream is the package's
// default stream, as Python's stream=None.
func (s *Stream) Device() (DeviceType, error) {
	if s == nil {
		return DefaultDevice()
	}
	return s.dev, nil
}

// handleLocked returns the C handle of s, the default stream for nil.
func (s *Stream) handleLocked() (uintptr, error) {
	if s == nil {
		return defaultStreamLocked()
	}
	return streamLocked(s.dev)
}

// The default streams' handles, made once on the MLX thread (MLX keeps
// default streams per thread, and every call runs on that one thread).
var (
	cpuStreamH, gpuStreamH uintptr
	defaultDev             = DeviceType(-1) // unset: GPU if available, else CPU
)

func streamLocked(t DeviceType) (uintptr, error) {
	if t == GPU {
		if gpuStreamH == 0 {
			h := mlx_default_gpu_stream_new()
			if err := checkHandle("mlx_default_gpu_stream_new", h); err != nil {
				return 0, err
			}
			gpuStreamH = h
		}
		return gpuStreamH, nil
	}
	if cpuStreamH == 0 {
		h := mlx_default_cpu_stream_new()
		if err := checkHandle("mlx_default_cpu_stream_new", h); err != nil {
			return 0, err
		}
		cpuStreamH = h
	}
	return cpuStreamH, nil
}

func gpuAvailableLocked() bool {
	d, err := devicesLocked()
	return err == nil && d.GPUs > 0
}

func defaultStreamLocked() (uintptr, error) {
	if defaultDev < 0 {
		defaultDev = CPU
		if gpuAvailableLocked() {
			defaultDev = GPU
		}
	}
	return streamLocked(defaultDev)
}

// SetDefaultDevice chooses the device whose default stream this package's
// ops use. Without it, ops use the GPU where MLX has one, else the CPU.
func SetDefaultDevice(t DeviceType) error {
	return doErr(func() error {
		if _, err := streamLocked(t); err != nil {
			return err
		}
		defaultDev = t
		return nil
	})
}

// DefaultDevice returns the device this package's ops run on.
func DefaultDevice() (DeviceType, error) {
	var t DeviceType
	err := doErr(func() error {
		_, err := defaultStreamLocked()
		t = defaultDev
		return err
	})
	return t, err
}

// Synchronize waits for everything queued on the stream to finish.
func Synchronize(s *Stream) error {
	return doErr(func() error {
		h, err := s.handleLocked()
		if err != nil {
			return err
		}
		defer waitingFor()()
		return check("mlx_synchronize", mlx_synchronize(h))
	})
}

// Devices describes what MLX can run on in this process.
type Devices struct {
	CPU   bool // always true once MLX loads
	GPUs  int  // number of GPU devices
	Metal bool // the GPU back-end is Metal
	CUDA  bool // the GPU back-end is CUDA
}

// Backend names the GPU back-end: "metal", "cuda" or "cpu" when there is no
// GPU.
func (d Devices) Backend() string {
	switch {
	case d.Metal:
		return "metal"
	case d.CUDA:
		return "cuda"
	}
	return "cpu"
}

// AvailableDevices reports the devices MLX can use.
func AvailableDevices() (Devices, error) {
	var d Devices
	err := doErr(func() error {
		var err error
		d, err = devicesLocked()
		return err
	})
	return d, err
}

func devicesLocked() (Devices, error) {
	d := Devices{CPU: true}
	if sym.mlx_device_count != 0 {
		n := new(int32)
		if err := check("mlx_device_count", mlx_device_count(n, int32(GPU))); err != nil {
			return d, err
		}
		d.GPUs = int(*n)
	}
	flag := new(bool)
	if err := check("mlx_metal_is_available", mlx_metal_is_available(flag)); err != nil {
		return d, err
	}
	d.Metal = *flag
	if sym.mlx_cuda_is_available != 0 {
		*flag = false
		if err := check("mlx_cuda_is_available", mlx_cuda_is_available(flag)); err != nil {
			return d, err
		}
		d.CUDA = *flag
	}
	if d.GPUs == 0 && (d.Metal || d.CUDA) {
		d.GPUs = 1
	}
	return d, nil
}

// Version returns MLX's version string ("0.32.4").
func Version() (string, error) {
	var v string
	err := doErr(func() error {
		str := new(uintptr)
		*str = mlx_string_new()
		defer func() { mlx_string_free(*str) }()
		if err := check("mlx_version", mlx_version(str)); err != nil {
			return err
		}
		v = goString(mlx_string_data(*str))
		return nil
	})
	return v, err
}
