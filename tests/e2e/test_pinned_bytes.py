"""Pinned output bytes: the SHA-256 of init and media segments of every variant (clear, cenc,
cbcs, HLS AES-128, and a cenc clear lead) on the sample assets with fixed keys, fetched from the
real server with its protected-segment cache off and on.

Segments are a pure function of (file, keys, policy): a change of even one byte is either a bug
or a deliberate format change. Performance work on the segment path must leave these digests
alone. To re-pin after a *deliberate* change, run with PIN_PRINT=1 and paste the printed table
(and say why in the commit message).
"""
import hashlib
import os

import pytest

from conftest import ASSETS
from http_util import get_ok, parse_media_playlist, parse_mpd, unversioned

KEYS = (
    '[keys.vid]\nkid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"\nkey = "2b7e151628aed2a6abf7158809cf4f3c"\n'
    '[keys.aud]\nkid = "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d"\nkey = "00112233445566778899aabbccddeeff"\n'
    '[keys.env]\nkid = "aaaabbbb-cccc-dddd-eeee-ffff00001111"\nkey = "0f0e0d0c0b0a09080706050403020100"\n'
)


def config(cache_mb):
    return (
        f"[cache]\nencrypted_segments_mb = {cache_mb}\n" + KEYS +
        '[policies.pin]\ndash = ["clear", "cenc", "cbcs"]\nhls = ["clear", "cbcs", "aes128"]\n'
        'allow_clear = true\nkey_delivery = "open"\n'
        'keys = { video = "vid", audio = "aud", envelope = "env" }\n'
        '[policies.lead]\ndash = ["cenc", "cbcs"]\nhls = ["cbcs"]\nclear_lead_segments = 1\n'
        'key_delivery = "open"\nkeys = { video = "vid", audio = "aud" }\n'
        '[[assets]]\nmatch = "hevc"\npolicy = "lead"\n'
        '[[assets]]\nmatch = "**"\npolicy = "pin"\n'
    )


# (asset, DASH manifests) — hevc runs with a one-segment clear lead.
DASH = [
    ("multi", ["manifest.mpd", "manifest.cenc.mpd", "manifest.cbcs.mpd"]),
    ("fragmented", ["manifest.mpd", "manifest.cenc.mpd", "manifest.cbcs.mpd"]),
    ("progressive", ["manifest.mpd", "manifest.cenc.mpd", "manifest.cbcs.mpd"]),
    ("hevc", ["manifest.cenc.mpd", "manifest.cbcs.mpd"]),
]
HLS = ["multi", "fragmented", "progressive"]

PINNED = {
    "/fragmented/fragmented_1/1.aes128.m4s#aes128": "d15707d1710d0992544739569c461465cc572750986fdd0dbba37251397a217a",
    "/fragmented/fragmented_1/1.cbcs.m4s": "a58197c7448a1f329c33fcfee5e7a2250af272da9945e1fd5be1e631e0debe25",
    "/fragmented/fragmented_1/1.cenc.m4s": "212d31a27a55de6ae116f4f02307e0a4ce3ba287bdb65d2f9370570c93f5a479",
    "/fragmented/fragmented_1/1.m4s": "039f49f4bbb3f893ab9351bd7c52c17de3434998100cb8d6f9cd6500d3080156",
    "/fragmented/fragmented_1/2.aes128.m4s#aes128": "f0174efaf7884967277c0dbdade64be6f48343de9105aef3f847e01028426216",
    "/fragmented/fragmented_1/2.cbcs.m4s": "25489a5d6eb9eddf0379dbffcf69da734a9c2336b743c3a84ceb2f5585939989",
    "/fragmented/fragmented_1/2.cenc.m4s": "373dfda0411b3d28eec5191a52b3743fbba22e37751642aaf2bd3c06f97fd998",
    "/fragmented/fragmented_1/2.m4s": "44a9ed404ebced13e360d79104cc69c266d32f777fdc9c7dd7606bc8a03a34f7",
    "/fragmented/fragmented_1/3.aes128.m4s#aes128": "309b0cd0ae13165929cf580e3cf914a4b75d6a1edc84355073a88ae2486d0fbf",
    "/fragmented/fragmented_1/3.cbcs.m4s": "b12042b7edfe0417b8eb9e609f68d6c145106d32570fda015b3e4d9213700d89",
    "/fragmented/fragmented_1/3.cenc.m4s": "8a99959f7b54f0f9c436c977dd087e8c9e00fa2427fd7cc266eedc10f5aca087",
    "/fragmented/fragmented_1/3.m4s": "2bd5435a933c0125ccb723d5f08bf122c8c56d43c555c4638de792aea3570680",
    "/fragmented/fragmented_1/init.cbcs.mp4": "599431631c41c723a575924fdca40eb0fe3dbb6ddf19a40f1bff98a4d3282c8e",
    "/fragmented/fragmented_1/init.cenc.mp4": "1d2c5678d0f87003ca59d8d91e80bde86ce3dbd3ff414f69d0ca03766adeb7ea",
    "/fragmented/fragmented_1/init.mp4": "9887e4a2ddebe5fba400d53417cf58c1c8ce69bf34889026a9368f558175f5a3",
    "/fragmented/fragmented_2/1.aes128.m4s#aes128": "61dc131afbbf627a7466b3fbc914c360287caad49194894174d02364306d88ba",
    "/fragmented/fragmented_2/1.cbcs.m4s": "a8a07783e70c562341dc3b36f7e113844704f1f5169c5d566f70e98366ba1ff5",
    "/fragmented/fragmented_2/1.cenc.m4s": "64b76cda080fe2521e2264adc2a8fd3b47575ecd8d67c57f52dc5876ccafbe4c",
    "/fragmented/fragmented_2/1.m4s": "079587bbe6e955e6ae581aee7ae11873537307abb94f9d7ab5507713d7eedaf1",
    "/fragmented/fragmented_2/2.aes128.m4s#aes128": "66aedbfb64980251ecb30300f26bde9776efc22a744e93fb9675c8a2c167c271",
    "/fragmented/fragmented_2/2.cbcs.m4s": "2d9db1b21eec827ed0bb073ccb3ddebe2ac25fe6ae5b1d601968a988c1a8771a",
    "/fragmented/fragmented_2/2.cenc.m4s": "c2f1cc42b580433f177058c06d32e50710aefcf72ac09e3560b911b3c2c27c8e",
    "/fragmented/fragmented_2/2.m4s": "4193865e54d69f69840a1daff6a761442a542e00f1810e65c815c3ed60fcfb41",
    "/fragmented/fragmented_2/init.cbcs.mp4": "2f8bdb770e859eb7a29284375eb44ae50054eca8b611c93aee2a549c6f242674",
    "/fragmented/fragmented_2/init.cenc.mp4": "bf06a1f6a67e7e4cd38f3e42c43ec4fa8be67ae0cc687736a05c454775360f06",
    "/fragmented/fragmented_2/init.mp4": "d8f7cf830574e84d1d7f0f5c0caacbcd4eceef630cbdaba6a0840bed0bf41742",
    "/hevc/hevc_1/1.cbcs.m4s": "9b530bcc479bdd641b6554df1b1b78c950f6d5695d8e2cdd6ae2ff28fb2051d0",
    "/hevc/hevc_1/1.cenc.m4s": "9b530bcc479bdd641b6554df1b1b78c950f6d5695d8e2cdd6ae2ff28fb2051d0",
    "/hevc/hevc_1/2.cbcs.m4s": "24e9b81ca72b01ce98bf7463b17f5d0d638a67c5531e6098637a1b473dc19bb7",
    "/hevc/hevc_1/2.cenc.m4s": "6b02518a6d8aa916afc480394b85c05f7bc94de3e69d3f340dc5008786865e0b",
    "/hevc/hevc_1/3.cbcs.m4s": "f4e0b1fe265840e992d33abca94cf9de448e60aa0c43eead0d2e1567f9254907",
    "/hevc/hevc_1/3.cenc.m4s": "fab514de4ff411b2ecd138f0ebf18cdb75e5495eb78a4e4421b40a36f20076a2",
    "/hevc/hevc_1/init.cbcs.mp4": "3e5227232ed42276f63cf0b585f99daf72be4a4e49d4d462eeacb03c16325de6",
    "/hevc/hevc_1/init.cenc.mp4": "7e41b2ed85f7985b45d1e5246fbab287ec3039fa6528d5a2504ee781aef26171",
    "/hevc/hevc_2/1.cbcs.m4s": "fbfa0368ae40b734cfa295de29a7d024c3a08f5d2bbec20639af7e5d7c3c3d8c",
    "/hevc/hevc_2/1.cenc.m4s": "fbfa0368ae40b734cfa295de29a7d024c3a08f5d2bbec20639af7e5d7c3c3d8c",
    "/hevc/hevc_2/2.cbcs.m4s": "6a8d72a9d43d1748bb5b4e94642488dec8e228accd800d27a44a87445563cf89",
    "/hevc/hevc_2/2.cenc.m4s": "e7e34ab4b22d7fbeb86e456efe60372570a314ba2c3b6f6c0dc8276b03d1d75e",
    "/hevc/hevc_2/3.cbcs.m4s": "f221d0d7704f520d7811041d77bc8636fc7372c13b335c8413d8da5d7b35c380",
    "/hevc/hevc_2/3.cenc.m4s": "3ea30326feb3c9d683de131d293fd9d2a7542d53a6829dbfe982e6e747ef9f9c",
    "/hevc/hevc_2/init.cbcs.mp4": "f1d23519f92d3de46ca0fe3fdc41e4e0b2b591a01535010ebc2aa43afe67fef4",
    "/hevc/hevc_2/init.cenc.mp4": "9dcc8d87ac676ab088c894dc789aa9b45ddf8f77aa6666be9fcb9bc6d8bf1b58",
    "/multi/audio_en_1/1.aes128.m4s#aes128": "f1516c37c06375ff5da95157a8ec881d352ee1298858996774c80be930ee42fd",
    "/multi/audio_en_1/1.cbcs.m4s": "a3a139d842c9b73e946c4b09dbd1edf6f36cb97fa7c4e08c299232fc7797becd",
    "/multi/audio_en_1/1.cenc.m4s": "aa96f7173ce84b41c21a6518aea619583583f1c646551a9748bc6a3d183100f7",
    "/multi/audio_en_1/1.m4s": "e6dad0f599ecba5f15a52edd2055bb598dd0a4bd2fee9fdcc787f91871e8fb09",
    "/multi/audio_en_1/2.aes128.m4s#aes128": "93a124c6c03f61eefa2c7a1f12de24c30272b3529f9f8746f7d407250fa3ea2b",
    "/multi/audio_en_1/2.cbcs.m4s": "9a98fe3081eb75685ad154440dce8ca63a95c40abc9617222e177c4622225e60",
    "/multi/audio_en_1/2.cenc.m4s": "f386fd2f52ee9254a912af2f34bfd7ad128967e035ae2c4c666703f0b28f5cd1",
    "/multi/audio_en_1/2.m4s": "f1c967f31c89a755adaedcc08c6b75cdbd785c0f4a0f18ed3aea83242bfc42d7",
    "/multi/audio_en_1/3.aes128.m4s#aes128": "27d93068f2dd1a37b2feac807ca0d942ca305ae774c2c79f8a1db27a7a140bc2",
    "/multi/audio_en_1/3.cbcs.m4s": "5c24758f759bdf63d306e85e672e83ad01a09ec2e341f4eda18c890540abe56b",
    "/multi/audio_en_1/3.cenc.m4s": "16ce9fc55d114bded75dbfa2b838fab2aff29ed55570f046bf93f10927d6a91d",
    "/multi/audio_en_1/3.m4s": "890961dc207b2ddd58f51c8df4ce00548ff080bc320ab7330f619f697a96b2d1",
    "/multi/audio_en_1/init.cbcs.mp4": "b0c779954d2436a37d1d2b27d175fdfffaecf00dbd20e8c55b54f2a51c19fa28",
    "/multi/audio_en_1/init.cenc.mp4": "cc6bb719356c0da458a467e1fbec2eb087f946471ffb1574e00639533a568184",
    "/multi/audio_en_1/init.mp4": "5d00bebaa2127e99b6cb3bc7e88bc53185a09e5a7cdbcdc86836479368914f4a",
    "/multi/audio_fr_1/1.aes128.m4s#aes128": "de43b157f7ea037f7227d008ad1669b1633ed633ffc20e91ab836c7a8e92b0ce",
    "/multi/audio_fr_1/1.cbcs.m4s": "3c261e83f253f65db2e60accc6a4fe4de0eb341a4dad6ab005365f38518a478e",
    "/multi/audio_fr_1/1.cenc.m4s": "e8c504a936942059f630aa18f6c1a913a9290602f7aa7e96f9f80933020253b4",
    "/multi/audio_fr_1/1.m4s": "548ca3425510c5419be40a0767d28e4769805f9d0f2f0ba2ec365bfb8b6935ae",
    "/multi/audio_fr_1/2.aes128.m4s#aes128": "0553f824a3a2ad192050600cf1b45e8a1cd83801b8155966ee494c3cf08e91d4",
    "/multi/audio_fr_1/2.cbcs.m4s": "1b17b64538923d08712d083b5fccb18e79f4854d8ca7a06275731ece078bf833",
    "/multi/audio_fr_1/2.cenc.m4s": "d9ecf92a4e67c4f7478fd7c9056efec26aacf707c7c6a59d69e646aba965d1d5",
    "/multi/audio_fr_1/2.m4s": "4b217b8c39ce69ac3a20131ec45ac2f794252ceaaeff69ccbcce10e33909968e",
    "/multi/audio_fr_1/3.aes128.m4s#aes128": "073e36432e778083ac0f1cecc2e9d89ecd2d299ae485139e9494939a603f4560",
    "/multi/audio_fr_1/3.cbcs.m4s": "5218de5036f09ae14e22114a53a670291e9721d5873ab0d9292c4d5766b6a092",
    "/multi/audio_fr_1/3.cenc.m4s": "742bc5b511be8be9a8d5d0276477f3b79bb04bff1602df44629caef0bd7bdb3a",
    "/multi/audio_fr_1/3.m4s": "c8542af7ed05416ab2c307d3c204d25e80845206dc3382353de587c91dbfedd2",
    "/multi/audio_fr_1/init.cbcs.mp4": "4405a2176d5a2e4748c0f6cc043d105db25011ce4ab7298e81fcc98037979462",
    "/multi/audio_fr_1/init.cenc.mp4": "6dec7a59c1787cbe724d6345d3b2ab7129e0fc4988c0625af6b366f9869591fb",
    "/multi/audio_fr_1/init.mp4": "c58afa2553260d5a4ae3fea6d10822c0293a9b2d466eccb3f7887dcf92717151",
    "/multi/video_180p_1/1.aes128.m4s#aes128": "35f9d0e1bfe917017bdf39e90d79c68157f64fe9669890079803d71dde0b00e3",
    "/multi/video_180p_1/1.cbcs.m4s": "24ca2355e8f99407c3c7f428b3c6ff39c7056679873984bec5313d06ac6f3cb6",
    "/multi/video_180p_1/1.cenc.m4s": "c3bb1d9fae6ce96a8cfa619aca07ae23ce149745697adabbb63a4e3d8199b342",
    "/multi/video_180p_1/1.m4s": "c929b3c473952115c1361fbf167fceec1b5146a8bf31d2bf1cc496f5a97d0644",
    "/multi/video_180p_1/2.aes128.m4s#aes128": "c4972bb388428af146ac32a2d2ab38d0e10b4259a335166bee58a5cee5c7cc31",
    "/multi/video_180p_1/2.cbcs.m4s": "7c423b98259be9154cbefca9e03bf1ea266fc4c2aa50e034905a1aa7fd1dd8ae",
    "/multi/video_180p_1/2.cenc.m4s": "70826c89e5a701226b84df8f14e593b2492784c3af57e86a796fe1b420d1ee53",
    "/multi/video_180p_1/2.m4s": "838662b2207bc1de5f48f04bbcd85aa17751f5d538aeab21efe8389245261cff",
    "/multi/video_180p_1/3.aes128.m4s#aes128": "1a62d28a3d2870550da52787bea079a472a10f1b84975f121063d152c5cf6c70",
    "/multi/video_180p_1/3.cbcs.m4s": "e773af0d3c9855abc5b6e06bc760c482b8b894d26a41afe8c08a66be5b605686",
    "/multi/video_180p_1/3.cenc.m4s": "42fe0c413a0389d4aeedddfcd36f1eb07bd16fe3658406d8e653349ce854005f",
    "/multi/video_180p_1/3.m4s": "c177a9e07b2044423814f4e6b11981a276b4299ce622e6f0ff0bfbe1ff017ba5",
    "/multi/video_180p_1/init.cbcs.mp4": "2af98af3dcee6fba9947ed33c2bf25e61344f45207ea030b0eb0fcd9ccce393c",
    "/multi/video_180p_1/init.cenc.mp4": "9202e7774ff3500558e3fe5acd26898675aca2b0f5d3b25ef89284fa94170930",
    "/multi/video_180p_1/init.mp4": "84e983595f9a105ddbb363267d9ec82033d8d0e6727da2d7ec6bd7413e737d0e",
    "/multi/video_270p_1/1.aes128.m4s#aes128": "ee5f24921c54b251a73c20f437834849165beae0ef1ae8b62da8ea2419dc5e2a",
    "/multi/video_270p_1/1.cbcs.m4s": "ae252fc341aef9da8fec68f60f7f7f11e6a6698e873b77e60beba07280d5ca64",
    "/multi/video_270p_1/1.cenc.m4s": "0a070392d31a6bd2bc6e616492b9641f370585cdc7c2181882bf2c17f9988867",
    "/multi/video_270p_1/1.m4s": "039f49f4bbb3f893ab9351bd7c52c17de3434998100cb8d6f9cd6500d3080156",
    "/multi/video_270p_1/2.aes128.m4s#aes128": "c78d06ff6af5fdb7305aca3d295e8ff193debe581d8938ac45c816ca76498cf6",
    "/multi/video_270p_1/2.cbcs.m4s": "bb1e0485717b5fbd922f0e166a8a11159f9a3d7d9307583a5079e63107948aeb",
    "/multi/video_270p_1/2.cenc.m4s": "a1d8141dd7f1e04af7d5727ad27dde8ae1357a47e1213fc28b7b54ba00a93726",
    "/multi/video_270p_1/2.m4s": "44a9ed404ebced13e360d79104cc69c266d32f777fdc9c7dd7606bc8a03a34f7",
    "/multi/video_270p_1/3.aes128.m4s#aes128": "8785d35e194ef8ba583e32c0a63e1c59c34fc5daff3cd263ad8f016016195b4c",
    "/multi/video_270p_1/3.cbcs.m4s": "ab031054ff324da803632aa936d8c97d1bac40f0c0472d2aa5fe4571ddc839a8",
    "/multi/video_270p_1/3.cenc.m4s": "4a843862f6cd4ba6ae9e5921628ed288d6add66deb9af5cc34ed0bffab5cd602",
    "/multi/video_270p_1/3.m4s": "2bd5435a933c0125ccb723d5f08bf122c8c56d43c555c4638de792aea3570680",
    "/multi/video_270p_1/init.cbcs.mp4": "dfc6779a6627a26bd5c8a28991771bd91ab8b7419ce8d569ffed34c9e3b67dbe",
    "/multi/video_270p_1/init.cenc.mp4": "1d2c5678d0f87003ca59d8d91e80bde86ce3dbd3ff414f69d0ca03766adeb7ea",
    "/multi/video_270p_1/init.mp4": "9887e4a2ddebe5fba400d53417cf58c1c8ce69bf34889026a9368f558175f5a3",
    "/multi/video_360p_1/1.aes128.m4s#aes128": "de113a36ddc43efcc6d346c96d3b63ec5827374c311dfd8092b56d5a6a378266",
    "/multi/video_360p_1/1.cbcs.m4s": "6f856c8aaa88c2d3b5418b8046ac1ea8f62899491ab8e19f9ae32c44419353cb",
    "/multi/video_360p_1/1.cenc.m4s": "6fd4b45218db0fa42b4476395b63a58749bee4b5c40090de69989b220c483a3a",
    "/multi/video_360p_1/1.m4s": "303c5a21af5d7f582593209925e5c0e2aefb56d7cccdd9e7c780e60d6f62d0e0",
    "/multi/video_360p_1/2.aes128.m4s#aes128": "512e398d7700e706d5544bf3387732486de3f26042af972856753d9c503495b0",
    "/multi/video_360p_1/2.cbcs.m4s": "752a7ce71bb1f80f8ea7b3a06f365bc362c1566c32e5154546f3734401938f9e",
    "/multi/video_360p_1/2.cenc.m4s": "a4ed85f5d12e0902e0564fe2d90fb9f34026ca85caac993732cf6ab5accbad7d",
    "/multi/video_360p_1/2.m4s": "90e90a264b24acb55aa2d57904aef782b85d56c755be4964ab921814e9744734",
    "/multi/video_360p_1/3.aes128.m4s#aes128": "49b77e80d2f0615f09426f085838310f78754d779501e62d5bb09d7b2893f847",
    "/multi/video_360p_1/3.cbcs.m4s": "6fcee7b290255fdaca79afca8bb75523d23ec99000040b486075a1bf640b0582",
    "/multi/video_360p_1/3.cenc.m4s": "6faef67558dfdbb2bbb70d5ba724e263039f8e29b13d03746bc893aa69ee6e0c",
    "/multi/video_360p_1/3.m4s": "c9880de44b8788400c5adee071fb72fe52956711b53580456ccb03d14c517a0f",
    "/multi/video_360p_1/init.cbcs.mp4": "3ab0507813a05fd2e3d262ad5055dfc6f9071ed462f17d65e6fcf328faf7d623",
    "/multi/video_360p_1/init.cenc.mp4": "83eeeba48dcb960efbb5f777c2ac349df0c2089e0c4fa5b5ec2e0bbbcc91facf",
    "/multi/video_360p_1/init.mp4": "cb0ac486f9d8a28ec28e1070a554cf0368ea772612dde84902f5556ecb4aeabc",
    "/progressive/progressive_1/1.aes128.m4s#aes128": "ff0f6494703a3a53058427cd8188b4d157056d495db046a400bce381313c7a92",
    "/progressive/progressive_1/1.cbcs.m4s": "ed3e2870f6c4e19a8b9692b19c6e96104e6b76846225b413a4683ec6599d6ce2",
    "/progressive/progressive_1/1.cenc.m4s": "2e52936b540d29def975a4a82ccd520874029fcd8d4e8f7e24a0b8b4124a7ad2",
    "/progressive/progressive_1/1.m4s": "2e08a18bc0682c677d0334a2d61b75f9a008e9d5c4d4e84095f649ec9154c413",
    "/progressive/progressive_1/2.aes128.m4s#aes128": "e23629f61f2d55cc14a7c622676f322ea2734e452fdd3323ba05f740719b5c24",
    "/progressive/progressive_1/2.cbcs.m4s": "ce295ac32fd8eb73aabaf08ae61c28805a371a772f7cc152816abea5d91c53c7",
    "/progressive/progressive_1/2.cenc.m4s": "86181c6e8007bfbe140a39d68e13e226f63cc86d8ec0c1431cd31cf4d864d079",
    "/progressive/progressive_1/2.m4s": "9c6e6b7ce9b591fdf5880b651a487a2871a9a52db523625d2e1bbf980385fa30",
    "/progressive/progressive_1/3.aes128.m4s#aes128": "5d032808cb47353748efdf33f958bc06b9a86aa2fb7b4505ca383d286e33aa82",
    "/progressive/progressive_1/3.cbcs.m4s": "c0f0ae4bcff5adf0277c173f9a20115f1d24f77e8ac83cb4fd747be1a9e6c3a3",
    "/progressive/progressive_1/3.cenc.m4s": "4e10d49e5176427a3bf642c737aa0dbb45ba94bc617a25f452203f5a4ef5d6bf",
    "/progressive/progressive_1/3.m4s": "4645b3560783bf6887815931fb9b138a9939ce8791e32223f78b4665e5350a95",
    "/progressive/progressive_1/init.cbcs.mp4": "7429f1933505b3717a63425be61e298b2f034db5cdea3439408a03d7b8fbc1ff",
    "/progressive/progressive_1/init.cenc.mp4": "4d0260a6fb234d08bb34bcd2a40901de958add6d6456110e23565af804fe7280",
    "/progressive/progressive_1/init.mp4": "a2858f447e8cc92675b27f354fc51dc827102e7827c7c7c156c09ae05fba0152",
    "/progressive/progressive_2/1.aes128.m4s#aes128": "0e8ef47e9a402b310ee0b9705156f5cbbed6c6c5af81aea5b6e3aa45ca79e2f3",
    "/progressive/progressive_2/1.cbcs.m4s": "3c1de65668d4b953ebb35cd57a7d3aa1f3779f376dff63ac4abbd961a6a2534c",
    "/progressive/progressive_2/1.cenc.m4s": "f482090a963e4f531790f712dba34b8000bc5fdd590ba494fb9e94f301eec9a5",
    "/progressive/progressive_2/1.m4s": "03860da2469a73fb88f9ffc97f9c5d3be60c8960d04e3353922d6a9c5b2eb98c",
    "/progressive/progressive_2/2.aes128.m4s#aes128": "6120d680d6d6cb7badf85e788df89dc508db36a13279b5e1d3e68105b8901f18",
    "/progressive/progressive_2/2.cbcs.m4s": "334be305532dee1ef58266f7b07e489d55c6914c8789a0c5f6f2d49181134c0b",
    "/progressive/progressive_2/2.cenc.m4s": "a1da97cb70c89c1e161883b87df3b29ac41df1d7f317158576dcf245e29f63f7",
    "/progressive/progressive_2/2.m4s": "afd87da2a03682045f74d5dbd031bfed36ea2658c12ffac136174c7894ce4dc6",
    "/progressive/progressive_2/3.aes128.m4s#aes128": "cc9ed88936560bb5e78f1f10559a5540df71de230e7874ea0d6605b61fe9722b",
    "/progressive/progressive_2/3.cbcs.m4s": "79b3f97396c2ff697fb9b968953402a38af1014323b3e35cf6909f666ace81de",
    "/progressive/progressive_2/3.cenc.m4s": "b8a8c69e09dd631d168df4ec15eb315cc3866c46345e50301d6f27a0f626d4a1",
    "/progressive/progressive_2/3.m4s": "da3b64126bc2b6c3f998aa2628a2071b827244ef0c96f8a3c70c10e4f30bc47a",
    "/progressive/progressive_2/init.cbcs.mp4": "a3c7d5c92b09380ff69427c6b93b03bffa0b8a1bb6e68da50a7d5f4d08a708d8",
    "/progressive/progressive_2/init.cenc.mp4": "66d3ae22fc06c959a50555ef17087a41d3b859c90c8af24123c622f985b39efe",
    "/progressive/progressive_2/init.mp4": "c39a7c8582e79adaa0e55ecbb8baeceb8938449005d231befbfad76d7ca5a5ee",
}


def picks(media):
    """First, second and last media segment (fewer if the rendition is short)."""
    idx = sorted({0, min(1, len(media) - 1), len(media) - 1})
    return [media[i] for i in idx]


def collect(base):
    """{unversioned path: sha256} for the chosen segments of every asset and variant."""
    out = {}
    for asset, manifests in DASH:
        for m in manifests:
            path = f"/{asset}/{m}"
            _, body = get_ok(base, path)
            for rep in parse_mpd(body, path):
                for p in [rep.init] + picks(rep.media):
                    _, data = get_ok(base, p)
                    out[unversioned(p)] = hashlib.sha256(data).hexdigest()
    for asset in HLS:
        path = f"/{asset}/manifest.mpd"
        _, body = get_ok(base, path)
        for rep in parse_mpd(body, path):
            playlist = f"/{asset}/{rep.id}/media.aes128.m3u8"
            _, text = get_ok(base, playlist)
            init, segs, _ = parse_media_playlist(text.decode(), playlist)
            for p in ([init] if init else []) + picks(segs):
                _, data = get_ok(base, p)
                # the AES-128 playlist names the clear init; key the media by variant
                out[unversioned(p) + ("" if p.endswith(".mp4") else "#aes128")] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.parametrize("cache_mb", [0, 64])
def test_segment_bytes_are_pinned(make_origin, tmp_path, cache_mb):
    cfg = tmp_path / "pin.toml"
    cfg.write_text(config(cache_mb))
    o = make_origin(ASSETS, config=cfg)
    got = collect(o.base_url)
    if os.environ.get("PIN_PRINT"):
        print("PINNED = {")
        for k in sorted(got):
            print(f'    "{k}": "{got[k]}",')
        print("}")
    assert any(".cenc." in k for k in got) and any(".cbcs." in k for k in got)
    assert any(k.endswith("#aes128") for k in got)
    assert any(k.endswith(".m4s") and k.count(".") == 1 for k in got), "no clear media segment"
    changed = {k: (PINNED.get(k), v) for k, v in got.items() if PINNED.get(k) != v}
    missing = sorted(set(PINNED) - set(got))
    assert not changed and not missing, f"segment bytes moved: {changed}; no longer served: {missing}"
    # a second fetch (a cache hit when the cache is on) gives the very same bytes
    assert collect(o.base_url) == got
