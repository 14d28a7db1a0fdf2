package sim

import "github.com/gpuledger/gpuledger/exporters/metrics"

// The families the simulated source serves, from exporters/metrics.
var (
	AllocationLabels  = metrics.AllocationLabels
	allocStartDesc    = metrics.AllocStart
	allocEndDesc      = metrics.AllocEnd
	allocWeightDesc   = metrics.AllocWeight
	allocDevicesDesc  = metrics.AllocDevices
	allocActivityDesc = metrics.AllocActivity
	gpuInfoDesc       = metrics.GPUInfo
	gpuMemTotalDesc   = metrics.GPUMemoryTotal
	gpuMemUsedDesc    = metrics.GPUMemoryUsed
	gpuPowerDesc      = metrics.GPUPower
	gpuEnergyDesc     = metrics.GPUEnergy
	gpuTempDesc       = metrics.GPUTemperature
	gpuClockDesc      = metrics.GPUClock
	gpuUtilDesc       = metrics.GPUUtil
	gpuECCDesc        = metrics.GPUECC
	migInfoDesc       = metrics.MIGInfo
	migWeightDesc     = metrics.MIGWeight
	migMemTotalDesc   = metrics.MIGMemoryTotal
	migMemUsedDesc    = metrics.MIGMemoryUsed
	migActivityDesc   = metrics.MIGActivity
	fpgaInfoDesc      = metrics.FPGAInfo
	fpgaTempDesc      = metrics.FPGATemperature
	fpgaPowerDesc     = metrics.FPGAPower
	fpgaCUDesc        = metrics.FPGAComputeUnit
	timeDesc          = metrics.ExporterTime
)
