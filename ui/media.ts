/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// Cameras and microphones: listing them, opening them, showing them.
import { useEffect, useState } from "preact/hooks";

export interface DeviceChoice {
  id: string;
  label: string;
}

export interface Devices {
  cameras: DeviceChoice[];
  microphones: DeviceChoice[];
  /** Re-reads the list, e.g. once permission reveals the labels. */
  refresh: () => void;
}

/** Lists cameras and microphones and follows plugging and unplugging.
 * Before permission is granted browsers hide labels (and sometimes ids),
 * so unnamed devices get numbered names. */
export function useDevices(): Devices {
  const [list, setList] = useState<MediaDeviceInfo[]>([]);
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const mediaDevices = navigator.mediaDevices;
    // Absent outside a secure context; the page explains that separately.
    if (!mediaDevices) return;
    let current = true;
    const read = () =>
      mediaDevices.enumerateDevices().then(
        (devices) => current && setList(devices),
        (error) => console.warn("umbrella: cannot list devices:", error),
      );
    read();
    mediaDevices.addEventListener("devicechange", read);
    return () => {
      current = false;
      mediaDevices.removeEventListener("devicechange", read);
    };
  }, [generation]);
  const choices = (kind: MediaDeviceKind, noun: string) =>
    list.filter((device) => device.kind === kind).map((device, index) => ({
      id: device.deviceId,
      label: device.label || `${noun} ${index + 1}`,
    }));
  return {
    cameras: choices("videoinput", "Camera"),
    microphones: choices("audioinput", "Microphone"),
    refresh: () => setGeneration((g) => g + 1),
  };
}

/** Opens the chosen camera and microphone, or only the one of the two this
 * device has; an empty id means the browser's default. Rejects with the
 * browser's DOMException (see mediaErrorMessage). */
export function openCameraAndMicrophone(
  devices: Devices,
  cameraId: string,
  microphoneId: string,
): Promise<MediaStream> {
  // An empty list may only mean the browser hides devices before
  // permission; then ask for both and let getUserMedia decide.
  const listed = devices.cameras.length + devices.microphones.length > 0;
  // A plain deviceId is a preference, not a requirement, so a remembered
  // device that has gone away falls back to another instead of failing.
  return navigator.mediaDevices.getUserMedia({
    // 720p where the camera has it, so that simulcast has three layers.
    video: (!listed || devices.cameras.length > 0) && {
      deviceId: cameraId || undefined,
      width: { ideal: 1280 },
      height: { ideal: 720 },
    },
    audio: (!listed || devices.microphones.length > 0) &&
      { deviceId: microphoneId || undefined },
  });
}

/** People expect to see themselves as in a mirror, but only from a camera
 * that faces them; desktop webcams report no facing mode at all. */
export function isMirrored(track: MediaStreamTrack | undefined): boolean {
  return track !== undefined &&
    track.getSettings().facingMode !== "environment";
}
