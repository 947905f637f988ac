/** E2EE requests and answers (docs/E2EE.md). Keys and ciphertext: standard base64 of libsignal's serialized bytes. */
import { Type } from 'typebox';
import { Uuid } from '../users/users.schemas.js';

/** Standard base64 (with padding), at most `maxBytes` decoded. */
export function Base64(description: string, maxBytes = 4096) {
  return Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: Math.ceil(maxBytes / 3) * 4, description });
}

export const SignalDeviceId = Type.Integer({ minimum: 1, maximum: 127, description: 'The Signal device id (1–127, per user).' });
const RegistrationId = Type.Integer({ minimum: 1, maximum: 16380, description: 'The libsignal registration id of the device.' });
const KeyId = Type.Integer({ minimum: 0, maximum: 16777215, description: 'The key id (libsignal: 24 bits).' });
/** Ciphertext message type (libsignal `CiphertextMessageType`: 2 whisper, 3 prekey, 7 sender key, 8 plaintext). */
export const CiphertextType = Type.Integer({ minimum: 0, maximum: 255, description: 'libsignal CiphertextMessageType: 2 Whisper, 3 PreKey, 7 SenderKey, 8 Plaintext.' });

export const RegisterDeviceBody = Type.Object(
  { registration_id: RegistrationId, identity_key: Base64('The device\'s identity public key (33 bytes).', 64) },
  { additionalProperties: false },
);

export const E2eeDevice = Type.Object({ device_id: SignalDeviceId, registration_id: RegistrationId, identity_key: Type.String() });

const PreKey = Type.Object({ key_id: KeyId, public_key: Base64('EC public key.', 64) }, { additionalProperties: false });
const SignedEcKey = Type.Object(
  { key_id: KeyId, public_key: Base64('EC public key.', 64), signature: Base64('XEdDSA signature by the identity key of the public key\'s bytes.', 128) },
  { additionalProperties: false },
);
const SignedKyberKey = Type.Object(
  { key_id: KeyId, public_key: Base64('Kyber-1024 public key.', 2048), signature: Base64('Signature by the identity key of the public key\'s bytes.', 128) },
  { additionalProperties: false },
);

export const UploadKeysBody = Type.Object(
  {
    signed_pre_key: Type.Optional(SignedEcKey),
    kyber_last_resort_key: Type.Optional(SignedKyberKey),
    pre_keys: Type.Optional(Type.Array(PreKey, { maxItems: 100 })),
    kyber_pre_keys: Type.Optional(Type.Array(SignedKyberKey, { maxItems: 100 })),
  },
  { additionalProperties: false },
);

export const KeyCounts = Type.Object({
  pre_keys: Type.Integer({ description: 'EC one-time prekeys left.' }),
  kyber_pre_keys: Type.Integer({ description: 'Kyber one-time prekeys left (the last-resort key not counted).' }),
});

export const ClaimBody = Type.Object(
  { user_id: Uuid, device_id: Type.Optional(SignalDeviceId) },
  { additionalProperties: false },
);

const OutKey = Type.Object({ key_id: Type.Integer(), public_key: Type.String() });
const OutSignedKey = Type.Object({ key_id: Type.Integer(), public_key: Type.String(), signature: Type.String() });

export const PreKeyBundle = Type.Object({
  device_id: SignalDeviceId,
  registration_id: RegistrationId,
  identity_key: Type.String(),
  signed_pre_key: OutSignedKey,
  pre_key: Type.Union([OutKey, Type.Null()], { description: 'A one-time EC prekey, handed out to this claim only; null when none is left.' }),
  kyber_pre_key: Type.With(OutSignedKey, { description: 'A one-time Kyber prekey, or the last-resort key when none is left.' }),
});

export const ToDeviceBody = Type.Object(
  {
    messages: Type.Array(
      Type.Object(
        { user_id: Uuid, device_id: SignalDeviceId, type: CiphertextType, body: Base64('The ciphertext.', 65536) },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);

/** A per-device envelope of a send in an encrypted room. */
export const Envelope = Type.Object(
  { user_id: Uuid, device_id: SignalDeviceId, registration_id: RegistrationId, type: CiphertextType, body: Base64('The ciphertext.', 65536) },
  { additionalProperties: false },
);

/** A sender-key message: one `groupEncrypt` ciphertext for every device of the room. */
export const SenderKeyCiphertext = Type.Object(
  { body: Base64('libsignal SenderKeyMessage bytes.', 65536) },
  { additionalProperties: false, description: 'One sender-key ciphertext (libsignal groupEncrypt), stored once, delivered to every device as envelope type 7.' },
);

/** The envelope a message carries for the receiving device. */
export const EnvelopeOut = Type.Object({
  sender_user_id: Type.Optional(Type.With(Uuid, { description: 'The user whose device encrypted it: the sender, or for a bridge ghost\'s message the bridge bot (docs/BRIDGES.md). Absent on sender-key envelopes.' })),
  sender_device_id: SignalDeviceId,
  type: CiphertextType,
  body: Type.String(),
});
