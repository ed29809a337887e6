// A relying party outside the site: the npm `jose` library (independent of
// our JWS code) fetches the discovery document and the JWKS that `sitetoken
// serve` publishes, and verifies our tokens with them. Run by
// tests/integration/server_wellknown.sh, which gives it (environment):
//   DISCOVERY  https URL of the CMG's /.well-known/openid-configuration
//   TOKENS     a file of lines "KIND TOKEN" (client, bulk)
//   EXPECT_ISS the site's issuer (urn:sccm:oauth2:<site GUID>)
//   DEVICE     the registered device's GUID (the client token's sub)
// The server's TLS certificate comes in NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';

const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const ok = (msg) => console.log(`ok - ${msg}`);

const disc = await (await fetch(process.env.DISCOVERY)).json();
if (disc.issuer !== process.env.EXPECT_ISS) fail(`issuer ${disc.issuer}`);
const JWKS = createRemoteJWKSet(new URL(disc.jwks_uri));
ok(`discovery: issuer ${disc.issuer}, jwks_uri ${disc.jwks_uri}`);

const opts = { issuer: disc.issuer, audience: 'urn:sccm:service',
  algorithms: ['RS256', 'ES256'] };
const tokens = readFileSync(process.env.TOKENS, 'utf8').trim().split('\n')
  .map((l) => l.split(' '));
for (const [kind, tok] of tokens) {
  const { payload, protectedHeader } = await jwtVerify(tok, JWKS, opts)
    .catch((e) => fail(`${kind} token not verified by jose: ${e.code} ${e.message}`));
  if (kind === 'client') {
    if (payload.Type !== 'ClientAuthentication') fail(`Type ${payload.Type}`);
    if (payload.sub !== process.env.DEVICE) fail(`sub ${payload.sub}`);
  } else if (payload.Type !== 'BulkRegistration') fail(`Type ${payload.Type}`);
  ok(`${kind} token verified by jose with the served JWKS (alg ${protectedHeader.alg}, kid ${protectedHeader.kid})`);
  // One changed claim byte and the signature no longer matches.
  const [h, p, s] = tok.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  claims.exp += 1;
  const forged = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
  const r = await jwtVerify(forged, JWKS, opts).then(() => 'accepted', (e) => e.code);
  if (r !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') fail(`forged ${kind} token: ${r}`);
  // A key the site does not publish: jose finds no key for that kid.
  const alien = [Buffer.from(JSON.stringify({ ...decodeProtectedHeader(tok),
    kid: 'not-a-site-key' })).toString('base64url'), p, s].join('.');
  const r2 = await jwtVerify(alien, JWKS, opts).then(() => 'accepted', (e) => e.code);
  if (r2 !== 'ERR_JWKS_NO_MATCHING_KEY') fail(`unknown kid: ${r2}`);
}
ok('a changed claim and an unknown kid are refused by jose');
