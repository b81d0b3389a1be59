package CartAuth;

# Keys, tokens and cookies for the identity tests.
#
# On load it makes a directory of keys ($ENV{TEST_NGINX_KEYS}, so configs
# can say $TEST_NGINX_KEYS/rsa.pub): an HS256 secret, a guest cookie
# secret, RSA-2048 and P-256 key pairs (openssl CLI), and a few unusable
# ones. It signs JWTs the way an identity provider would (HS256 with
# Digest::SHA, RS256/ES256 with `openssl dgst`), and makes guest cookies
# with the module's format, so a test can forge a valid-looking one, an
# expired one or a tampered one.
#
# Also the server config the identity blocks share ($Config): the cart
# API with cart_user + guest cookies at /api/v1/cart, JWT locations
# /jwt/hs, /jwt/rs, /jwt/es, and guest-only /guest; all with the fake
# catalog of CartConf.

use strict;
use warnings;

use CartConf;
use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempdir);
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);

our $Dir = tempdir('cart-keys-XXXXXX', TMPDIR => 1, CLEANUP => 1);
$ENV{TEST_NGINX_KEYS} = $Dir;

our $HsSecret     = 'hs256-test-secret-0123456789abcdef-0123456789';
our $CookieSecret = 'cookie-test-secret-fedcba9876543210-fedcba987';

sub spew {
    my ($name, $content) = @_;
    open my $fh, '>', "$Dir/$name" or die "$Dir/$name: $!";
    print {$fh} $content;
    close $fh;
}

sub openssl {
    system('openssl', @_) == 0 or die "openssl @_ failed\n";
}

spew('hs256.secret', "$HsSecret\n");
spew('cookie.secret', "$CookieSecret\n");
spew('short.secret', "too-short\n");
openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048',
        '-out', "$Dir/rsa.pem", '-quiet');
openssl('pkey', '-in', "$Dir/rsa.pem", '-pubout', '-out', "$Dir/rsa.pub");
openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
        '-out', "$Dir/ec.pem");
openssl('pkey', '-in', "$Dir/ec.pem", '-pubout', '-out', "$Dir/ec.pub");
openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384',
        '-out', "$Dir/ec384.pem");
openssl('pkey', '-in', "$Dir/ec384.pem", '-pubout', '-out', "$Dir/ec384.pub");

my $Json = JSON::PP->new->canonical;

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

# A signature with `openssl dgst`: DER for EC keys, as openssl makes it.
sub openssl_sign {
    my ($input, $key) = @_;
    my $in = "$Dir/input.$$";
    spew("input.$$", $input);
    open my $out, '-|', 'openssl', 'dgst', '-sha256', '-binary',
                        '-sign', $key, $in
        or die "openssl dgst: $!";
    binmode $out;
    my $sig = do { local $/; <$out> };
    close $out or die "openssl dgst -sign failed\n";
    unlink $in;
    return $sig;
}

# ECDSA-Sig-Value (DER) -> r || s, 32 bytes each (RFC 7518 3.4)
sub der_to_raw {
    my ($der) = @_;
    my @b = unpack 'C*', $der;
    my $i = 2;
    $i++ if $b[1] & 0x80;
    my @parts;
    for (1 .. 2) {
        die "not an INTEGER\n" unless $b[$i] == 2;
        my $len = $b[$i + 1];
        my $int = pack 'C*', @b[$i + 2 .. $i + 1 + $len];
        $int =~ s/^\x00+//;
        my $pad = 32 - length $int;
        push @parts, ("\x00" x ($pad > 0 ? $pad : 0)) . $int;
        $i += 2 + $len;
    }
    return join '', @parts;
}

# jwt(ALG, {claims}, header => {...}, secret => '...', key => 'file')
# signs with ALG: HS256, RS256, ES256, or 'none' (an empty signature).
# The header defaults to {"alg":ALG,"typ":"JWT"}.
sub jwt {
    my ($alg, $claims, %opt) = @_;
    my $header = $opt{header} // { alg => $alg, typ => 'JWT' };
    my $input = encode_base64url($Json->encode($header)) . '.'
              . encode_base64url($Json->encode($claims));
    my $sig = '';
    if ($alg eq 'HS256') {
        $sig = hmac_sha256($input, $opt{secret} // $HsSecret);
    } elsif ($alg eq 'RS256') {
        $sig = openssl_sign($input, $opt{key} // "$Dir/rsa.pem");
    } elsif ($alg eq 'ES256') {
        $sig = der_to_raw(openssl_sign($input, $opt{key} // "$Dir/ec.pem"));
    }
    return "$input." . encode_base64url($sig);
}

# claims for user $sub, valid for an hour
sub claims {
    my ($sub, %more) = @_;
    return { sub => $sub, exp => time + 3600, iat => time, %more };
}

# A guest cookie value as the module makes it; any session, any expiry,
# any secret.
sub guest_cookie {
    my ($session, $expires, $secret) = @_;
    $expires //= time + 3600;
    my $tag = encode_base64url(hmac_sha256("cart-guest-v1:$session.$expires",
                                           $secret // $CookieSecret));
    return "$session.$expires.$tag";
}

# 32 hex characters
sub session {
    my ($seed) = @_;
    return substr(unpack('H*', Digest::SHA::sha256($seed)), 0, 32);
}

# The session of a Set-Cookie header ("cart_guest=<session>.<exp>.<tag>...")
sub session_of {
    my ($set_cookie) = @_;
    return $set_cookie =~ /cart_guest=([0-9a-f]{32})\./ ? $1 : undef;
}

our $Config = <<'_EOC_' . $CartConf::Catalog;
    location /api/v1/cart {
        cart_api;
        cart_user $http_x_user_id;
        cart_guest_cookie cart_guest secret=$TEST_NGINX_KEYS/cookie.secret;
        cart_catalog /_catalog/$cart_sku;
    }
    location /nocatalog {
        cart_api;
        cart_user $http_x_user_id;
        cart_guest_cookie cart_guest secret=$TEST_NGINX_KEYS/cookie.secret;
    }
    location /jwt/hs {
        cart_api;
        cart_jwt_key $TEST_NGINX_KEYS/hs256.secret;
        cart_guest_cookie cart_guest secret=$TEST_NGINX_KEYS/cookie.secret;
    }
    location /jwt/rs {
        cart_api;
        cart_jwt_key $TEST_NGINX_KEYS/rsa.pub;
    }
    location /jwt/es {
        cart_api;
        cart_jwt_key $TEST_NGINX_KEYS/ec.pub ES256;
    }
_EOC_

sub default_config {
    my $block = shift;
    if (!defined $block->config) {
        $block->set_value('config', $Config);
    }
}

1;
