/**
 * The simulators' self-signed certificates (test/googlechat/x509.ts) must parse whatever their
 * random serial: one in about 500 began with a zero byte, was DER-padded, and OpenSSL refused it
 * ("illegal padding"), so a Google Chat simulator's pushes failed verification for a whole test file.
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { selfSignedCert } from '../googlechat/x509.js';

describe('selfSignedCert', () => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

  it.each([
    ['00017f0000000001', '017F0000000001'],
    ['0000000000000005', '05'],
    ['0080000000000001', '80000000000001'],
    ['80ffffffffffffff', '80FFFFFFFFFFFFFF'],
    ['7fffffffffffffff', '7FFFFFFFFFFFFFFF'],
  ])('encodes serial %s minimally, so OpenSSL reads it (%s)', (serial, expected) => {
    const cert = new crypto.X509Certificate(selfSignedCert(privateKey, publicKey, 'sim.test', { serial: Buffer.from(serial, 'hex') }));
    expect(cert.serialNumber).toBe(expected);
    expect(cert.verify(publicKey)).toBe(true);
  });
});
