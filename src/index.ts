/** bfcfs: BFC v1 containers. Library entry point. */

export { crc32c } from "./codec/crc32c.ts";
export type { CommitInfo } from "./container/commits.ts";
export { type CompactOptions, type CompactResult, compact } from "./container/compact.ts";
export {
  type CommitOptions,
  type CommitResult,
  Container,
  type StagedEntry,
  type UpdateOptions,
  type Usage,
} from "./container/container.ts";
export { type RootDigest, rootDigest } from "./container/digest.ts";
export {
  type ExtractedEntry,
  type ExtractFailure,
  type ExtractOptions,
  type ExtractReport,
  extract,
} from "./container/extract.ts";
export { type Credentials, readKeyFile } from "./container/keys.ts";
export { type Entry, Reader, type ReaderOptions } from "./container/reader.ts";
export {
  checkSignature,
  generateSigningKey,
  type SignatureCheck,
  type SignResult,
  signContainer,
} from "./container/signature.ts";
export { type VerifyOptions, type VerifyProblem, type VerifyReport, verify } from "./container/verify.ts";
export {
  type AddedEntry,
  type Compression,
  type EntryMeta,
  type WriteProgress,
  Writer,
  type WriterOptions,
  type WriteSummary,
} from "./container/writer.ts";
export type { BackingPolicy } from "./disk/backing-file.ts";
export { type BlockSource, BufferSource, RawFile, Slice } from "./disk/block-source.ts";
export type { FilesystemProbe, FilesystemType } from "./disk/filesystem-probe.ts";
export { type ImageLayer, imageLayers } from "./disk/image-layers.ts";
export {
  type ImportedType,
  type ImportOptions,
  type ImportProgress,
  type ImportSummary,
  importDiskImage,
} from "./disk/import.ts";
export { importInThread } from "./disk/import-thread.ts";
export {
  choosePartition,
  type OpenImageOptions,
  type OpenPartitionOptions,
  openImage,
  openPartition,
  PartitionSource,
} from "./disk/open-disk.ts";
export { type ExtVolume, type ExtVolumeOptions, openExtVolume } from "./disk/open-ext.ts";
export { type Partition, type PartitionTable, readPartitionTable } from "./disk/partitions.ts";
export { type BackingLink, Qcow2Image, type Qcow2Options } from "./disk/qcow2.ts";
export type { Qcow2Header } from "./disk/qcow2-header.ts";
export { BfcError, type ErrnoCode, isBfcError, type Reason } from "./errors.ts";
export type {
  CommitRecord,
  ContainerMetadata,
  EntryAttrs,
  Extension,
  PreviousCommit,
  ResourceLimits,
  SignatureRecord,
} from "./format/extension.ts";
export { describeFeatures, formatUuid, type Header } from "./format/header.ts";
export { type EntryType, IndexTable } from "./format/index-table.ts";
export { normalizePath, referenceCanLookUp } from "./format/path.ts";
export type {
  AttachedIo,
  Backend,
  CheckpointInfo,
  CheckpointOptions,
  CheckpointResult,
  ContainerInfo,
  ContainerState,
  CreateOptions as ContainerCreateOptions,
  DeleteOptions as ContainerDeleteOptions,
  RestoreOptions,
  StartOptions as ContainerStartOptions,
  StartResult as ContainerStartResult,
  StopOptions as ContainerStopOptions,
} from "./runtime/backend.ts";
export {
  type BfcBackendConfig,
  CONFIG_ENV,
  type DirBackendConfig,
  defaultConfig,
  defaultConfigPath,
  type EncryptionSource,
  loadConfig,
  parseConfig,
  type RuntimeConfig,
} from "./runtime/config.ts";
export { OverlayBackend } from "./runtime/lifecycle.ts";
export {
  type BackendContext,
  type BackendDescription,
  type BackendFactory,
  BackendManager,
  type OpenOptions as RuntimeOpenOptions,
  type RunOptions as ContainerRunOptions,
} from "./runtime/manager.ts";
export {
  type Bundle,
  checkId,
  defaultOciConfig,
  type OciConfig,
  type OciState,
  type OciStatus,
  readBundle,
  validateOciConfig,
} from "./runtime/oci-spec.ts";
export type { LayerTarget } from "./runtime/overlay-layer.ts";
export type {
  CommitInfo as ContainerCommitInfo,
  CommitStore,
  RootfsStorage,
} from "./runtime/rootfs-storage.ts";
export {
  builtinTypes,
  type Capabilities,
  createVfs,
  type DirEntry,
  type FileHandle,
  type FileSystem,
  type FileSystemType,
  type FileType,
  type MountInfo,
  type MountOptions,
  type NodeStat,
  Vfs,
  VfsDir,
  VfsFileHandle,
  type VfsOptions,
} from "./vfs/index.ts";
