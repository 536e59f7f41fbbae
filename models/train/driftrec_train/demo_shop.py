"""The demo shop: a synthetic bilingual shop whose users change interests at known times.

The real datasets may not be redistributed, so the project ships this generator as its default
demo data (docs/data.md, "The demo shop"). It writes the driftrec format through
:func:`events.write_events` / :func:`events.write_items`, plus ``truth.json``, the ground truth
that real logs never have:

* items in twelve categories (Chinese and English names), several brands each (Latin and
  Chinese names), titles that mix Chinese and English words, prices lognormal per category.
  Title words carry the category, but not one to one: brands, model names and attributes such
  as "无线 wireless" or "礼盒 gift box" are shared between categories;
* users whose interests move through 1 to 3 phases (a main category, sometimes a secondary
  one); a phase starts at a known timestamp, the first event of its first session;
* sessions over ~60 days with the funnel impression -> view (dwell_s) -> click -> cart ->
  purchase, and reviews days later; popularity skew inside each category; noise (feed slots
  from other categories, one stray click now and then, rare off-interest sessions) and order
  (after a purchase, the complement: a phone, then a phone case; similar items after a click).

Everything is drawn from :class:`random.Random` streams seeded from ``seed`` (one for the
catalogue, one per user), so a seed gives the same bytes on every run, and adding users does
not change the earlier ones.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .events import EVENT_TYPES, Event, Item, write_events, write_items

FORMAT = "driftrec-demo-shop/1"
START_TS = 1709222400
"""2024-03-01 00:00 in UTC+8 (2024-02-29 16:00 UTC): the shop's users live in UTC+8, and the
window's days are their local days, so session hours follow their local day."""
DAY = 86400
SESSION_GAP_S = 1800
"""Sessions are at least this far apart; events inside a session are closer than this."""

# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Category:
    """One product category and the vocabulary its items are written with (pairs are (zh, en))."""

    key: str
    zh: str
    en: str
    parent_zh: str
    parent_en: str
    price_median: float
    price_sigma: float
    item_weight: float
    """share of the catalogue, relative"""
    user_weight: float
    """how often it is a user's main interest, relative"""
    brands: tuple[tuple[str, str], ...]
    """(name written in the brand field, other name sometimes used in titles or "")"""
    subtypes: tuple[tuple[str, str], ...]
    attrs: tuple[tuple[str, str], ...]
    specs: tuple[str, ...]
    series: tuple[str, ...]
    praise: tuple[tuple[str, str], ...]

    @property
    def path_zh(self) -> str:
        return f"{self.parent_zh} > {self.zh}"

    @property
    def path_en(self) -> str:
        return f"{self.parent_en} > {self.en.title()}"


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``"a/b, c/d"`` -> ``(("a", "b"), ("c", "d"))``; a missing second half is ""."""
    out = []
    for part in text.split(","):
        zh, _, en = part.strip().partition("/")
        out.append((zh.strip(), en.strip()))
    return tuple(out)


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


CATEGORIES: tuple[Category, ...] = (
    Category("running_shoes", "跑步鞋", "running shoes", "运动", "Sports", 450, 0.40, 1.0, 1.1,
             _pairs("Nike/耐克, Adidas/阿迪达斯, ASICS/亚瑟士, 李宁/LI-NING, 安踏/ANTA, New Balance/新百伦, 特步/Xtep"),
             _pairs("跑步鞋/running shoes, 竞速跑鞋/racing shoes, 越野跑鞋/trail running shoes, 慢跑鞋/jogging shoes"),
             _pairs("男款/men's, 女款/women's, 缓震/cushioned, 透气/breathable, 轻量/lightweight, 防滑/non-slip, 运动/sport"),
             tuple(f"{n}码" for n in range(36, 46)) + tuple(f"US {n}" for n in range(7, 12)),
             _words("Air Zoom, Pegasus, Ultraboost, Gel-Kayano, 飞电, 赤兔, 1080, Pro"),
             _pairs("穿着很舒服/very comfortable, 鞋底很软/soft sole")),
    Category("sportswear", "运动服", "sportswear", "运动", "Sports", 180, 0.50, 1.0, 0.9,
             _pairs("Nike/耐克, Adidas/阿迪达斯, 李宁/LI-NING, Under Armour/安德玛, Lululemon/露露乐蒙, 迪卡侬/Decathlon"),
             _pairs("速干T恤/quick-dry T-shirt, 运动短裤/running shorts, 瑜伽裤/yoga leggings, 运动外套/training jacket, "
                    "运动袜/sports socks, 卫衣/hoodie"),
             _pairs("男款/men's, 女款/women's, 速干/quick-dry, 透气/breathable, 修身/slim fit, 宽松/loose fit, 运动/sport"),
             _words("S, M, L, XL, XXL, 均码"),
             _words("Dri-FIT, Align, HeatGear, 训练系列, Essentials, Pro"),
             _pairs("面料很舒服/nice fabric, 尺码标准/true to size")),
    Category("phones", "手机", "phones", "数码", "Electronics", 3500, 0.50, 0.8, 1.2,
             _pairs("Apple/苹果, 华为/HUAWEI, 小米/Xiaomi, Samsung/三星, OPPO/, vivo/, 荣耀/HONOR"),
             _pairs("手机/smartphone, 5G手机/5G phone, 拍照手机/camera phone, 折叠屏手机/foldable phone"),
             _pairs("5G/5G, 拍照/camera, 长续航/long battery, 快充/fast charging, 双卡双待/dual SIM, 6.7英寸/6.7-inch"),
             _words("128GB, 256GB, 512GB, 8GB+256GB, 12GB+512GB"),
             _words("15 Pro, Mate 60, 14 Ultra, Galaxy S24, Find X7, X100, Magic6, Pro, Max"),
             _pairs("运行流畅/runs smoothly, 拍照清晰/great camera")),
    Category("accessories", "数码配件", "gadget accessories", "数码", "Electronics", 60, 0.60, 1.4, 0.7,
             _pairs("Anker/安克, 绿联/UGREEN, 倍思/Baseus, Spigen/, 小米/Xiaomi, Apple/苹果"),
             _pairs("手机壳/phone case, 钢化膜/screen protector, 充电器/charger, 数据线/USB-C cable, 充电宝/power bank, "
                    "扩展坞/USB-C hub"),
             _pairs("快充/fast charging, 无线/wireless, 磁吸/magnetic, 防摔/shockproof, 适用iPhone 15/for iPhone 15, "
                    "适用华为/for HUAWEI, 便携/portable"),
             _words("20W, 65W, 1m, 2m, 10000mAh, 20000mAh"),
             _words("MagSafe, Nano, GaN, Pro, Max"),
             _pairs("充电很快/charges fast, 做工不错/well made")),
    Category("headphones", "耳机", "headphones", "数码", "Electronics", 600, 0.70, 0.9, 0.9,
             _pairs("Sony/索尼, Apple/苹果, Bose/, 漫步者/EDIFIER, 华为/HUAWEI, 小米/Xiaomi, JBL/"),
             _pairs("蓝牙耳机/bluetooth earbuds, 降噪耳机/noise cancelling headphones, 头戴式耳机/over-ear headphones, "
                    "运动耳机/sports earphones"),
             _pairs("无线/wireless, 降噪/noise cancelling, 长续航/long battery, 运动/sport, 入耳式/in-ear, "
                    "高音质/hi-fi, 办公/office"),
             _words("白色, 黑色, white, black, Type-C"),
             _words("WH-1000XM5, AirPods Pro, QuietComfort, FreeBuds, Buds 5, Pro, Max"),
             _pairs("降噪效果好/great noise cancelling, 音质很好/great sound")),
    Category("laptops", "笔记本电脑", "laptops", "数码", "Electronics", 6000, 0.40, 0.7, 0.8,
             _pairs("联想/Lenovo, Apple/苹果, Dell/戴尔, 华为/HUAWEI, ASUS/华硕, 小米/Xiaomi"),
             _pairs("笔记本电脑/laptop, 轻薄本/ultrabook, 游戏本/gaming laptop, 二合一平板电脑/2-in-1 tablet laptop"),
             _pairs("轻薄/thin and light, 高性能/high performance, 办公/office, 学生/student, 长续航/long battery, "
                    "14英寸/14-inch, 16英寸/16-inch"),
             _words("16GB+512GB, 16GB+1TB, 32GB+1TB, i5, i7, M3, R7"),
             _words("ThinkPad X1, MacBook Air, XPS 13, MateBook 14, ZenBook, RedmiBook, Pro"),
             _pairs("屏幕清晰/sharp screen, 运行很快/fast")),
    Category("coffee", "咖啡", "coffee", "食品饮料", "Food & Drink", 80, 0.50, 1.0, 1.0,
             _pairs("星巴克/Starbucks, Nespresso/, 三顿半/Saturnbird, 瑞幸/luckin, illy/, Lavazza/拉瓦萨, 雀巢/Nestlé"),
             _pairs("咖啡豆/coffee beans, 挂耳咖啡/drip coffee bags, 咖啡胶囊/coffee capsules, 冻干咖啡/instant coffee, "
                    "冷萃咖啡/cold brew coffee"),
             _pairs("阿拉比卡/arabica, 中度烘焙/medium roast, 深度烘焙/dark roast, 无糖/sugar-free, 提神/energizing, "
                    "礼盒/gift box, 便携/portable"),
             _words("250g, 500g, 1kg, 10颗, 20颗, 12杯"),
             _words("派克市场, Vertuo, 超即溶, 厚乳拿铁, Espresso, Crema"),
             _pairs("香气浓郁/rich aroma, 口感顺滑/smooth taste")),
    Category("tea", "茶叶", "tea", "食品饮料", "Food & Drink", 120, 0.70, 0.9, 0.8,
             _pairs("立顿/Lipton, 八马/, 大益/, Twinings/川宁, 小罐茶/, 茶颜悦色/"),
             _pairs("绿茶/green tea, 乌龙茶/oolong tea, 普洱茶/pu-erh tea, 红茶/black tea, 花草茶/herbal tea, 茶包/tea bags"),
             _pairs("明前/early spring, 浓香型/rich aroma, 无糖/sugar-free, 礼盒/gift box, 便携/portable, 冷泡/cold brew"),
             _words("100g, 250g, 50包, 20袋, 357g"),
             _words("铁观音, 龙井, 大红袍, 7572, English Breakfast, Earl Grey"),
             _pairs("茶香清新/fresh aroma, 回甘明显/sweet aftertaste")),
    Category("skincare", "护肤品", "skincare", "美妆", "Beauty", 300, 0.60, 1.0, 1.0,
             _pairs("兰蔻/Lancôme, 雅诗兰黛/Estée Lauder, 珀莱雅/PROYA, SK-II/, La Roche-Posay/理肤泉, 薇诺娜/Winona"),
             _pairs("精华液/serum, 面霜/face cream, 爽肤水/toner, 防晒霜/sunscreen, 洁面乳/cleanser, 卸妆水/makeup remover"),
             _pairs("保湿/moisturizing, 美白/brightening, 抗老/anti-aging, 敏感肌/sensitive skin, 补水/hydrating, "
                    "礼盒/gift box"),
             _words("30ml, 50ml, 100ml, 200ml"),
             _words("小黑瓶, 红宝石, 神仙水, Effaclar, 舒敏, Advanced"),
             _pairs("很保湿/very moisturizing, 不刺激/gentle on skin")),
    Category("makeup", "彩妆", "makeup", "美妆", "Beauty", 200, 0.50, 0.9, 0.8,
             _pairs("MAC/魅可, 花西子/Florasis, 完美日记/Perfect Diary, Dior/迪奥, YSL/圣罗兰, 3CE/"),
             _pairs("口红/lipstick, 粉底液/foundation, 眼影盘/eyeshadow palette, 睫毛膏/mascara, 散粉/setting powder"),
             _pairs("哑光/matte, 持久/long-lasting, 不脱妆/smudge-proof, 保湿/moisturizing, 礼盒/gift box, 女款/women's"),
             _words("3.5g, 30ml, #01, #02, #999, 12色"),
             _words("Rouge, 999, 雕花, 星空, Ruby Woo, Advanced"),
             _pairs("颜色很正/true color, 很持久/long-lasting")),
    Category("books", "图书", "books", "图书音像", "Books & Media", 60, 0.40, 1.3, 0.8,
             _pairs("中信出版社/CITIC Press, 人民邮电出版社/, O'Reilly/, Penguin/企鹅, 机械工业出版社/, 三联书店/"),
             _pairs("小说/novel, 编程书/programming book, 历史书/history book, 绘本/picture book, 经管书/business book"),
             _pairs("中文版/Chinese edition, 英文原版/English edition, 平装/paperback, 精装/hardcover, 畅销/bestseller, "
                    "礼盒/gift box, 学生/student, 办公/office"),
             _words("第2版, 第3版, 2023版, 套装3册"),
             _words("三体, 活着, Clean Code, 深度学习, 人类简史, Python"),
             _pairs("内容精彩/great content, 印刷清晰/clear print")),
    Category("kitchen", "厨房用品", "kitchenware", "家居", "Home", 300, 0.60, 1.0, 0.8,
             _pairs("苏泊尔/SUPOR, 美的/Midea, 双立人/Zwilling, 摩飞/Morphy Richards, Tefal/特福, 德龙/De'Longhi"),
             _pairs("不粘锅/non-stick pan, 电饭煲/rice cooker, 刀具套装/knife set, 咖啡机/coffee machine, "
                    "手冲壶/pour-over kettle, 磨豆机/coffee grinder"),
             _pairs("不粘/non-stick, 家用/home, 大容量/large capacity, 智能/smart, 不锈钢/stainless steel, 便携/portable, "
                    "礼盒/gift box"),
             _words("28cm, 30cm, 3L, 4L, 5件套, 1.2L"),
             _words("火红点, 智能IH, 意式, V60, Classic, Pro"),
             _pairs("很好用/easy to use, 做工扎实/solid build")),
)
CATEGORY_BY_KEY: dict[str, Category] = {c.key: c for c in CATEGORIES}

GENERIC_WORDS: tuple[str, ...] = ("新款", "2024新款", "官方正品", "热卖", "限定", "爆款", "New", "Official", "2024")
"""Marketing words any title may carry: no category signal at all."""


@dataclass(frozen=True)
class Complement:
    """After a purchase in ``source`` (of one of ``source_subtypes``, or any when empty), the user
    goes on, with probability ``p``, to ``target`` items of ``target_subtypes`` in the same session."""

    source: str
    source_subtypes: tuple[str, ...]
    target: str
    target_subtypes: tuple[str, ...]
    p: float


COMPLEMENTS: tuple[Complement, ...] = (
    Complement("phones", (), "accessories", ("手机壳", "钢化膜", "充电器"), 0.7),
    Complement("laptops", (), "accessories", ("扩展坞", "数据线"), 0.5),
    Complement("kitchen", ("咖啡机",), "coffee", ("咖啡胶囊", "咖啡豆"), 0.7),
    Complement("coffee", ("咖啡豆",), "kitchen", ("手冲壶", "磨豆机"), 0.4),
    Complement("running_shoes", (), "sportswear", ("运动袜", "运动短裤"), 0.5),
    Complement("makeup", (), "skincare", ("卸妆水",), 0.5),
)

# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class DemoParams:
    """Everything the generator draws from; stored in truth.json as ``params``."""

    n_users: int
    n_items: int
    events_per_user: tuple[int, int]
    """target events per user, uniform in [lo, hi]; the real count varies around it by a session"""
    min_sessions_per_phase: int = 2
    days: int = 60
    start_ts: int = START_TS
    phase_count_p: tuple[float, float, float] = (0.25, 0.45, 0.30)
    """probability of 1, 2, 3 interest phases (fewer when the user has too few sessions)"""
    secondary_p: float = 0.4
    """a phase has a secondary category"""
    secondary_share: float = 0.35
    """share of a two-category phase's sessions that focus on the secondary category"""
    off_interest_session_p: float = 0.03
    """a session about a category outside the phase (a gift, a one-off need)"""
    feed_mix_p: float = 0.15
    """share of page slots filled with popular items of other categories"""
    stray_click_p: float = 0.1
    """a session has one stray click: an item of another category viewed and clicked"""
    similar_page_p: float = 0.5
    """after a click, the next page shows the clicked item's subtype"""
    popularity_alpha: float = 1.0
    """Zipf exponent of item popularity inside a category"""
    pages_p: tuple[float, float, float] = (0.45, 0.35, 0.20)
    """probability of 1, 2, 3 pages in a session"""
    page_size: tuple[int, int] = (3, 5)
    events_per_session: float = 12.0
    """the mean events a session produces with the settings above; used to plan sessions"""
    review_p: float = 0.4
    """a purchase is reviewed, 2 to 12 days later, at the start of the user's next session"""


PRESETS: dict[str, DemoParams] = {
    "demo": DemoParams(n_users=1500, n_items=2000, events_per_user=(60, 120)),
    "tiny": DemoParams(n_users=80, n_items=120, events_per_user=(18, 32), min_sessions_per_phase=1),
}

# Funnel probabilities by affinity of the item to the session: the session's focus category,
# another category of the current phase, or any other category ("off").
_VIEW_P = {"focus": 0.50, "phase": 0.35, "off": 0.10}
_CLICK_P = {"focus": 0.45, "phase": 0.35, "off": 0.15}
_CART_P = {"focus": 0.30, "phase": 0.20, "off": 0.05}
_PURCHASE_P = 0.6
_DWELL_MEDIAN_S = {"focus": 30.0, "phase": 22.0, "off": 8.0}
_LOCAL_HOUR_WEIGHTS = (1, 0.5, 0.2, 0.1, 0.1, 0.2, 0.5, 1.5, 2.5, 2.5, 2.5, 3, 4, 3.5, 2.5, 2.5, 2.5, 3, 3.5,
                       4.5, 5.5, 6, 5, 3)
_RATING_WEIGHTS = ((5, 0.50), (4, 0.25), (3, 0.11), (2, 0.06), (1, 0.08))
_MEH = _pairs("一般般/it is okay, 还行吧/nothing special, 中规中矩/average")
_BAD = _pairs("质量一般/the quality is poor, 和图片不符/not as described, 物流太慢/shipping was slow, "
              "用了一周就坏了/broke after a week")


# --------------------------------------------------------------------------- result


@dataclass
class DemoShop:
    """A generated shop: the catalogue, the event log (time order) and the ground truth."""

    items: list[Item]
    events: list[Event]
    truth: dict[str, Any]


@dataclass(frozen=True)
class ShiftedUser:
    """A user whose last interest change falls inside their events (see :func:`shifted_users`)."""

    user_id: str
    shift_ts: int
    """start of the last phase: the first event at or after it belongs to the new interests"""
    before: tuple[str, ...]
    """categories of the phase before the shift (main first)"""
    after: tuple[str, ...]
    """categories of the last phase (main first)"""
    new: tuple[str, ...]
    """categories of ``after`` that are not in ``before``"""
    n_before: int
    """the user's counted events before ``shift_ts``"""
    n_after: int
    """the user's counted events at or after ``shift_ts``"""


def make_params(preset: str = "demo", n_users: Optional[int] = None, n_items: Optional[int] = None) -> DemoParams:
    """A preset's parameters, with the user and item counts overridden when given."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    params = PRESETS[preset]
    if n_users is not None:
        params = replace(params, n_users=n_users)
    if n_items is not None:
        params = replace(params, n_items=n_items)
    if params.n_users < 1:
        raise ValueError("n_users must be at least 1")
    if params.n_items < 3 * len(CATEGORIES):
        raise ValueError(f"n_items must be at least {3 * len(CATEGORIES)} (3 per category)")
    return params


# --------------------------------------------------------------------------- sampling helpers

class _Picker:
    """Weighted choice from a fixed list (random.Random.choices with cumulative weights)."""

    __slots__ = ("values", "cum")

    def __init__(self, values: Sequence[Any], weights: Sequence[float]) -> None:
        self.values = list(values)
        self.cum = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)

    def __call__(self, rng: random.Random) -> Any:
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


def _stream(seed: int, name: str) -> random.Random:
    """An independent, reproducible stream (string seeds hash with SHA-512, not PYTHONHASHSEED)."""
    return random.Random(f"driftrec-demo-shop/{seed}/{name}")


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _price(rng: random.Random, category: Category) -> float:
    p = category.price_median * math.exp(category.price_sigma * rng.gauss(0.0, 1.0))
    if p >= 100:
        return float(round(p / 10) * 10 - 1)  # 449, 3499
    if p >= 10:
        return round(round(p) - 0.1, 1)  # 59.9
    return max(1.9, round(p, 1))


def _split_counts(total: int, weights: Sequence[float], minimum: int) -> list[int]:
    """Largest-remainder split of ``total`` by ``weights``, each part at least ``minimum``."""
    rest = total - minimum * len(weights)
    wsum = sum(weights)
    exact = [rest * w / wsum for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: rest - sum(counts)]:
        counts[i] += 1
    return [c + minimum for c in counts]


# --------------------------------------------------------------------------- catalogue

@dataclass
class _ItemInfo:
    item_id: str
    category: str
    subtype: int
    brand: str
    brand_alt: str
    series: str
    price: float


def _title(rng: random.Random, cat: Category, brand: tuple[str, str], subtype: tuple[str, str],
           lang: str) -> tuple[str, str]:
    """A product title and the series word in it ("" when none)."""

    def word(pair: tuple[str, str]) -> str:
        zh, en = pair
        if lang == "zh" or not en:
            return zh
        if lang == "en":
            return en
        return zh if rng.random() < 0.6 else en

    name, alt = brand
    parts: list[str] = [alt if alt and rng.random() < 0.2 else name]
    series = rng.choice(cat.series) if rng.random() < 0.6 else ""
    if series:
        parts.append(series)
    if rng.random() < 0.3:
        parts.insert(0 if rng.random() < 0.5 else len(parts), rng.choice(GENERIC_WORDS))
    n_attrs = 1 if rng.random() < 0.6 else 2
    for attr in rng.sample(cat.attrs, n_attrs):
        parts.append(word(attr))
    zh, en = subtype
    if rng.random() < 0.15:
        pass  # no product noun: "Sony WH-1000XM5 无线 降噪 black" leaves the category to the other words
    elif lang == "zh":
        parts.append(zh)
    elif lang == "en":
        parts.append(en)
    else:
        parts.extend((zh, en))
    if rng.random() < 0.7:
        parts.append(rng.choice(cat.specs))
    # Chinese words are often written together: "男款跑步鞋".
    out = parts[0]
    for prev, part in zip(parts, parts[1:]):
        glue = "" if _is_cjk(prev[-1]) and _is_cjk(part[0]) and rng.random() < 0.5 else " "
        out += glue + part
    return out, series


def _catalogue(params: DemoParams, seed: int) -> tuple[list[Item], list[_ItemInfo]]:
    rng = _stream(seed, "items")
    counts = _split_counts(params.n_items, [c.item_weight for c in CATEGORIES], 3)
    drafts: list[tuple[Item, _ItemInfo]] = []
    for cat, count in zip(CATEGORIES, counts):
        for k in range(count):
            subtype = k % len(cat.subtypes) if k < len(cat.subtypes) else rng.randrange(len(cat.subtypes))
            brand = rng.choice(cat.brands)
            lang = _Picker(("mix", "zh", "en"), (0.55, 0.30, 0.15))(rng)
            title, series = _title(rng, cat, brand, cat.subtypes[subtype], lang)
            if lang == "zh" or (lang == "mix" and rng.random() < 0.7):
                path = cat.path_zh
            else:
                path = cat.path_en
            price = _price(rng, cat)
            drafts.append((Item("", title, path, brand[0], price),
                           _ItemInfo("", cat.key, subtype, brand[0], brand[1], series, price)))
    rng.shuffle(drafts)  # ids say nothing about the category
    width = max(5, len(str(len(drafts) - 1)))
    items, infos = [], []
    for idx, (item, info) in enumerate(drafts):
        item.item_id = info.item_id = f"i{idx:0{width}d}"
        items.append(item)
        infos.append(info)
    return items, infos


# --------------------------------------------------------------------------- users

class _World:
    """The catalogue indexed for sampling: popularity-weighted pickers per category and subtype."""

    def __init__(self, params: DemoParams, seed: int, infos: list[_ItemInfo]) -> None:
        self.params = params
        self.infos = {info.item_id: info for info in infos}
        rng = _stream(seed, "popularity")
        by_cat: dict[str, list[_ItemInfo]] = {c.key: [] for c in CATEGORIES}
        for info in infos:
            by_cat[info.category].append(info)
        self.by_cat_ids = {key: [i.item_id for i in members] for key, members in by_cat.items()}
        self.cat_pick: dict[str, _Picker] = {}
        self.sub_pick: dict[tuple[str, int], _Picker] = {}
        for key, members in by_cat.items():
            ranks = list(range(len(members)))
            rng.shuffle(ranks)
            weights = [1.0 / (r + 1) ** params.popularity_alpha for r in ranks]
            self.cat_pick[key] = _Picker([m.item_id for m in members], weights)
            for sub in range(len(CATEGORY_BY_KEY[key].subtypes)):
                sel = [(m.item_id, w) for m, w in zip(members, weights) if m.subtype == sub]
                if sel:
                    self.sub_pick[(key, sub)] = _Picker([s[0] for s in sel], [s[1] for s in sel])
        keys = [c.key for c in CATEGORIES]
        self.main_pick = _Picker(keys, [c.user_weight for c in CATEGORIES])
        self.related = {c.key: sorted({o.key for o in CATEGORIES if o.key != c.key and o.parent_en == c.parent_en}
                                      | {r.target for r in COMPLEMENTS if r.source == c.key}
                                      | {r.source for r in COMPLEMENTS if r.target == c.key})
                        for c in CATEGORIES}
        self.hour_pick = _Picker(range(24), _LOCAL_HOUR_WEIGHTS)
        self.pages_pick = _Picker((1, 2, 3), params.pages_p)
        self.phase_count_pick = _Picker((1, 2, 3), params.phase_count_p)
        self.rating_pick = _Picker([r for r, _ in _RATING_WEIGHTS], [w for _, w in _RATING_WEIGHTS])


def _pick_other(rng: random.Random, world: _World, exclude: Iterable[str]) -> str:
    excluded = set(exclude)
    while True:
        key = world.main_pick(rng)
        if key not in excluded:
            return key


def _phases(rng: random.Random, world: _World, n_sessions: int) -> list[list[str]]:
    params = world.params
    n = min(world.phase_count_pick(rng), max(1, n_sessions // params.min_sessions_per_phase))
    phases: list[list[str]] = []
    for _ in range(n):
        main = _pick_other(rng, world, phases[-1] if phases else ())
        cats = [main]
        if rng.random() < params.secondary_p:
            related = [k for k in world.related[main] if k != main]
            cats.append(rng.choice(related) if related and rng.random() < 0.5 else _pick_other(rng, world, [main]))
        phases.append(cats)
    return phases


def _review_text(rng: random.Random, info: _ItemInfo, rating: int, english: bool) -> str:
    cat = CATEGORY_BY_KEY[info.category]
    noun_zh, noun_en = cat.subtypes[info.subtype]
    brand = info.brand_alt if english and info.brand_alt and not _is_cjk(info.brand_alt) else info.brand
    if english and _is_cjk(brand):
        brand = ""
    product_en = " ".join(p for p in (brand, info.series if not _is_cjk(info.series) else "", noun_en) if p)
    product_zh = f"{info.brand}{' ' + info.series if info.series else ''}{noun_zh}"
    praise_zh, praise_en = rng.choice(cat.praise)
    if rating >= 4:
        if english:
            return rng.choice((f"Great {product_en}, {praise_en}.", f"Love this {noun_en}! {praise_en.capitalize()}.",
                               f"{praise_en.capitalize()}, the {product_en} is worth it."))
        return rng.choice((f"{product_zh}很不错，{praise_zh}。", f"收到了，{noun_zh}{praise_zh}，五星好评！",
                           f"第二次买{info.brand}的{noun_zh}了，{praise_zh}。"))
    if rating == 3:
        meh_zh, meh_en = rng.choice(_MEH)
        if english:
            return f"The {product_en} is fine, {meh_en}."
        return f"{product_zh}{meh_zh}，{praise_zh}但是不算惊艳。"
    bad_zh, bad_en = rng.choice(_BAD)
    if english:
        return f"Disappointed with this {noun_en}: {bad_en}."
    return f"{noun_zh}{bad_zh}，不推荐。"


class _UserSim:
    """One user's sessions; events are (ts, event_type, item_id, dwell_s, amount, rating, text)."""

    def __init__(self, world: _World, rng: random.Random, user_id: str) -> None:
        self.world = world
        self.rng = rng
        self.user_id = user_id
        self.out: list[tuple] = []
        self.pending_reviews: list[tuple[int, str]] = []
        self.english = rng.random() < 0.3
        self.clock = 0

    # -- one event at a time, strictly after the previous one except impressions of one page
    def emit(self, ts: int, kind: str, item_id: str, dwell: Optional[float] = None,
             amount: Optional[float] = None, rating: Optional[float] = None, text: str = "") -> None:
        self.out.append((ts, kind, item_id, dwell, amount, rating, text))

    def advance(self, lo: float, hi: float) -> int:
        self.clock += max(1, int(self.rng.uniform(lo, hi)))
        return self.clock

    def page(self, slots: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Show ``slots`` [(item_id, affinity)]; returns the clicked ones."""
        rng = self.rng
        page_ts = self.advance(10, 90)
        for item_id, _ in slots:
            self.emit(page_ts, "impression", item_id)
        clicked = []
        for item_id, affinity in slots:
            forced = affinity == "stray"
            affinity = "off" if forced else affinity
            if not forced and rng.random() >= _VIEW_P[affinity]:
                continue
            ts = self.advance(2, 25)
            dwell = min(900.0, round(_DWELL_MEDIAN_S[affinity] * math.exp(0.8 * rng.gauss(0.0, 1.0)), 1))
            self.emit(ts, "view", item_id, dwell=dwell)
            self.clock += int(dwell)
            if not forced and rng.random() >= _CLICK_P[affinity]:
                continue
            self.emit(self.advance(1, 3), "click", item_id)
            clicked.append((item_id, affinity))
            self.advance(15, 240)  # on the item page
        return clicked

    def fill(self, pick: _Picker, affinity: str, k: int, exclude_cats: Sequence[str], phase: Sequence[str],
             stray: bool) -> list[tuple[str, str]]:
        rng, world = self.rng, self.world
        slots: list[tuple[str, str]] = []
        seen: set[str] = set()
        stray_at = rng.randrange(k) if stray else -1
        for slot in range(k):
            for _ in range(10):
                if slot == stray_at or rng.random() < world.params.feed_mix_p:
                    other = _pick_other(rng, world, exclude_cats)
                    item_id = world.cat_pick[other](rng)
                    aff = "stray" if slot == stray_at and other not in phase else (
                        "phase" if other in phase else "off")
                else:
                    item_id, aff = pick(rng), affinity
                if item_id not in seen:
                    seen.add(item_id)
                    slots.append((item_id, aff))
                    break
        return slots

    def checkout(self, clicked: list[tuple[str, str]]) -> list[str]:
        rng = self.rng
        carted = []
        for item_id, affinity in clicked:
            if rng.random() < _CART_P[affinity]:
                price = self.world.infos[item_id].price
                qty = 1 if rng.random() < 0.85 else (2 if rng.random() < 0.75 else 3)
                amount = round(price * qty, 2)
                self.emit(self.advance(5, 40), "cart", item_id, amount=amount)
                carted.append((item_id, amount))
        if not carted:
            return []
        self.advance(30, 300)
        bought = []
        for item_id, amount in carted:
            if rng.random() < _PURCHASE_P:
                ts = self.advance(2, 10)
                self.emit(ts, "purchase", item_id, amount=amount)
                bought.append(item_id)
                if rng.random() < self.world.params.review_p:
                    self.pending_reviews.append((ts + int(rng.uniform(2, 12) * DAY), item_id))
        return bought

    def reviews(self, session_ts: int) -> None:
        due = [r for r in self.pending_reviews if r[0] <= session_ts]
        if not due:
            return
        self.pending_reviews = [r for r in self.pending_reviews if r[0] > session_ts]
        rng = self.rng
        for _, item_id in due:
            rating = self.world.rating_pick(rng)
            english = self.english != (rng.random() < 0.1)
            text = _review_text(rng, self.world.infos[item_id], rating, english)
            self.emit(self.advance(20, 90), "review", item_id, rating=float(rating), text=text)

    def session(self, start_ts: int, phase: list[str]) -> None:
        rng, world, params = self.rng, self.world, self.world.params
        self.clock = start_ts - 10  # the first advance lands within seconds of start_ts
        self.reviews(start_ts)
        if rng.random() < params.off_interest_session_p:
            focus = _pick_other(rng, world, phase)
        elif len(phase) > 1 and rng.random() < params.secondary_share:
            focus = phase[1]
        else:
            focus = phase[0]
        stray_page = rng.randrange(3) if rng.random() < params.stray_click_p else -1
        clicked: list[tuple[str, str]] = []
        n_pages = world.pages_pick(rng)
        for page_no in range(n_pages):
            pick = world.cat_pick[focus]
            if clicked and rng.random() < params.similar_page_p:
                info = world.infos[clicked[-1][0]]
                if info.category == focus:
                    pick = world.sub_pick[(info.category, info.subtype)]
            k = rng.randint(*params.page_size)
            slots = self.fill(pick, "focus", k, [focus], phase, stray=page_no == min(stray_page, n_pages - 1))
            clicked.extend(self.page(slots))
        bought = self.checkout(clicked)
        for item_id in bought:
            info = world.infos[item_id]
            source = CATEGORY_BY_KEY[info.category]
            for rule in COMPLEMENTS:
                if rule.source == info.category and (not rule.source_subtypes or
                                                     source.subtypes[info.subtype][0] in rule.source_subtypes):
                    break
            else:
                continue
            if rng.random() < rule.p:
                target = CATEGORY_BY_KEY[rule.target]
                subs = [i for i, (zh, _) in enumerate(target.subtypes) if zh in rule.target_subtypes]
                pick = world.sub_pick.get((rule.target, rng.choice(subs)), world.cat_pick[rule.target])
                slots = self.fill(pick, "focus", rng.randint(*params.page_size), [rule.target], phase, stray=False)
                self.checkout(self.page(slots))
            break  # one follow-up at most

    def session_starts(self, n_sessions: int) -> list[int]:
        """Planned session start times over the user's active span, local daytime-weighted."""
        rng, params = self.rng, self.world.params
        span = params.days * rng.uniform(0.5, 1.0)
        offset = rng.uniform(0, params.days - span)
        starts = []
        for _ in range(n_sessions):
            day = int(offset + rng.random() * span)
            local_s = self.world.hour_pick(rng) * 3600 + rng.randrange(3600)
            starts.append(params.start_ts + day * DAY + local_s)
        starts.sort()
        return starts

    def run(self) -> list[dict[str, Any]]:
        rng, world, params = self.rng, self.world, self.world.params
        budget = rng.randint(*params.events_per_user)
        n_sessions = max(1, round(budget / params.events_per_session))
        phase_cats = _phases(rng, world, n_sessions)
        # Sessions per phase: the minimum each, the rest spread at random.
        sizes = [params.min_sessions_per_phase] * len(phase_cats)
        if sum(sizes) > n_sessions:
            sizes = [1] * len(phase_cats)
        for _ in range(n_sessions - sum(sizes)):
            sizes[rng.randrange(len(sizes))] += 1
        phase_of_session = [p for p, size in enumerate(sizes) for _ in range(size)]
        phases: list[dict[str, Any]] = []
        end = None
        for s, planned in enumerate(self.session_starts(n_sessions)):
            start = planned if end is None else max(planned, end + SESSION_GAP_S + int(rng.expovariate(1 / 7200)))
            p = phase_of_session[s]
            first = len(self.out)
            self.session(start, phase_cats[p])
            if len(phases) == p:  # a phase starts with the first event of its first session
                phases.append({"start_ts": self.out[first][0], "categories": list(phase_cats[p])})
            end = self.out[-1][0]
        return phases


# --------------------------------------------------------------------------- generate / write

def generate(preset: str = "demo", seed: int = 0, *, n_users: Optional[int] = None,
             n_items: Optional[int] = None, params: Optional[DemoParams] = None) -> DemoShop:
    """Generate a shop from a preset (or explicit ``params``). Same arguments, same shop."""
    if params is None:
        params = make_params(preset, n_users, n_items)
    items, infos = _catalogue(params, seed)
    world = _World(params, seed, infos)
    width = max(5, len(str(params.n_users - 1)))
    keyed: list[tuple[int, int, int, tuple]] = []
    users: dict[str, Any] = {}
    for u in range(params.n_users):
        user_id = f"u{u:0{width}d}"
        sim = _UserSim(world, _stream(seed, f"user/{u}"), user_id)
        phases = sim.run()
        users[user_id] = {"phases": phases, "n_events": len(sim.out)}
        keyed.extend((raw[0], u, k, raw) for k, raw in enumerate(sim.out))
    keyed.sort(key=lambda x: x[:3])  # a log: time order, a user's own order kept on equal ts
    user_ids = list(users)
    events = [Event(user_ids[u], raw[2], raw[0], raw[1], raw[3], raw[4], raw[5], raw[6], row=row)
              for row, (_, u, _, raw) in enumerate(keyed)]
    counts = {kind: 0 for kind in EVENT_TYPES}
    for event in events:
        counts[event.event_type] += 1
    truth = {
        "format": FORMAT,
        "preset": preset,
        "seed": seed,
        "params": asdict(params),
        "start_ts": params.start_ts,
        "end_ts": max((e.ts for e in events), default=params.start_ts),  # type: ignore[type-var]
        "counts": {"users": len(users), "items": len(items), "events": len(events), "by_type": counts},
        "categories": {
            c.key: {"zh": c.zh, "en": c.en, "paths": [c.path_zh, c.path_en],
                    "subtypes": [list(s) for s in c.subtypes], "items": sorted(world.by_cat_ids[c.key])}
            for c in CATEGORIES},
        "complements": [asdict(rule) for rule in COMPLEMENTS],
        "users": users,
    }
    return DemoShop(items, events, truth)


def write_shop(shop: DemoShop, out_dir: str | Path) -> dict[str, Path]:
    """Write items.jsonl, events.jsonl and truth.json into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    paths = {"items": out / "items.jsonl", "events": out / "events.jsonl", "truth": out / "truth.json"}
    write_items(paths["items"], shop.items)
    write_events(paths["events"], shop.events)
    paths["truth"].write_text(json.dumps(shop.truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return paths


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read truth.json back."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- using the truth

def item_categories(truth: Mapping[str, Any]) -> dict[str, str]:
    """item_id -> category key (the key, not the item's ``category`` string, which is zh or en)."""
    return {item: key for key, cat in truth["categories"].items() for item in cat["items"]}


def phase_index(phases: Sequence[Mapping[str, Any]], ts: int) -> int:
    """Index of the phase ``ts`` falls in (phase p covers [start_ts[p], start_ts[p+1])); -1 before the first."""
    starts = [p["start_ts"] for p in phases]
    return bisect.bisect_right(starts, ts) - 1


def group_by_user(events: Iterable[Event]) -> dict[str, list[Event]]:
    """A user's events in (ts, file row) order, the order docs/evaluation.md pins."""
    out: dict[str, list[Event]] = {}
    for event in events:
        out.setdefault(event.user_id, []).append(event)  # type: ignore[arg-type]
    for seq in out.values():
        seq.sort(key=lambda e: (e.ts, e.row))
    return out


def shifted_users(truth: Mapping[str, Any], events_by_user: Mapping[str, Sequence[Event]],
                  min_new_phase_events: int = 5, min_old_phase_events: int = 5,
                  event_types: Optional[Iterable[str]] = None) -> list[ShiftedUser]:
    """Users whose last interest change happened before their last event, for shift evaluation.

    A user qualifies when truth gives them at least two phases, the last phase starts before the
    user's last event in ``events_by_user`` (which may be a truncated history), and at least
    ``min_new_phase_events`` of those events fall at or after that start and
    ``min_old_phase_events`` before it. ``event_types`` limits which events count (all by
    default; e.g. ``("view", "click", "cart", "purchase")`` to ignore impressions and reviews).
    Sorted by user id.
    """
    kinds = set(event_types) if event_types is not None else None
    out = []
    for user_id in sorted(events_by_user):
        info = truth["users"].get(user_id)
        if info is None or len(info["phases"]) < 2:
            continue
        seq = [e for e in events_by_user[user_id] if kinds is None or e.event_type in kinds]
        if not seq:
            continue
        shift = info["phases"][-1]
        shift_ts = int(shift["start_ts"])
        if shift_ts >= max(e.ts for e in seq):  # type: ignore[type-var]
            continue
        n_after = sum(1 for e in seq if e.ts >= shift_ts)  # type: ignore[operator]
        n_before = len(seq) - n_after
        if n_after < min_new_phase_events or n_before < min_old_phase_events:
            continue
        before = tuple(info["phases"][-2]["categories"])
        after = tuple(shift["categories"])
        out.append(ShiftedUser(user_id, shift_ts, before, after, tuple(c for c in after if c not in before),
                               n_before, n_after))
    return out


# --------------------------------------------------------------------------- command line

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="demo_data.py",
        description="Write the synthetic demo shop: items.jsonl, events.jsonl and truth.json (docs/data.md).")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                        help="demo: ~2000 items, 1500 users; tiny: ~120 items, 80 users (default: demo)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    parser.add_argument("--users", type=int, help="number of users (overrides the preset)")
    parser.add_argument("--items", type=int, help="number of items (overrides the preset)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        shop = generate(args.preset, args.seed, n_users=args.users, n_items=args.items)
        paths = write_shop(shop, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = shop.truth["counts"]
    by_type = ", ".join(f"{k}={v}" for k, v in counts["by_type"].items())
    print(f"{args.out}: {counts['users']} users, {counts['items']} items, {counts['events']} events "
          f"({by_type}) in {time.perf_counter() - started:.2f} s")
    print(f"  {paths['items'].name}, {paths['events'].name}, {paths['truth'].name}")
    return 0
